"""The API's content negotiation, apart from ``config.api``: DRF imports it while it defines
``APIView``, which ``config.api`` needs."""

from rest_framework.negotiation import DefaultContentNegotiation


class Negotiation(DefaultContentNegotiation):
    """DRF's choice of renderer, remembered per ``Accept`` header and renderer classes.

    Clients send the same few headers again and again, and parsing one costs more than the rest
    of a claim's Python. The choice depends on nothing else: there is no format in the query
    (``URL_FORMAT_OVERRIDE`` is off) and no URL takes a format suffix. At most ``KEPT`` choices
    are kept, so that headers made up by a client cost what they cost before, not memory.
    """

    KEPT = 256
    _chosen: dict[tuple, tuple[int, str]] = {}

    def select_renderer(self, request, renderers, format_suffix=None):
        if format_suffix:
            return super().select_renderer(request, renderers, format_suffix)
        key = (request.META.get("HTTP_ACCEPT", "*/*"), tuple(map(type, renderers)))
        chosen = self._chosen.get(key)
        if chosen is None:
            renderer, media_type = super().select_renderer(request, renderers)
            chosen = (renderers.index(renderer), media_type)
            if len(self._chosen) < self.KEPT:
                self._chosen[key] = chosen
        index, media_type = chosen
        return renderers[index], media_type
