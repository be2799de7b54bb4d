"""The chart library comes from its installed package (``config/staticfiles.py``): found by
Django's staticfiles, served by whitenoise, and alone of the package's files collected."""

from importlib.util import find_spec
from pathlib import Path

from django.contrib.staticfiles import finders
from django.test import Client

from config.staticfiles import PACKAGE_FILES, PackageFileFinder

PLOTLY = "vendor/plotly/plotly.min.js"


def test_the_finder_finds_plotly_js_in_the_installed_package_and_nothing_else():
    found = finders.find(PLOTLY)
    package = Path(next(iter(find_spec("plotly").submodule_search_locations)))
    assert Path(found) == package / "package_data" / "plotly.min.js"
    assert finders.find("vendor/plotly/widgetbundle.js") is None
    listed = [(path, storage.prefix) for path, storage in PackageFileFinder().list([])]
    assert listed == [("plotly.min.js", "vendor/plotly")]
    assert set(PACKAGE_FILES) == {PLOTLY}
    assert PackageFileFinder().check() == []


def test_whitenoise_serves_plotly_js_to_the_pages():
    response = Client().get(f"/static/{PLOTLY}")
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    assert body.startswith(b"/**") and b"plotly.js" in body[:300]
