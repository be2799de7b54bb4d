"""Quality tables, one module per concern; each is listed here so Django finds its models."""

from .gold import Accuracy, GoldScore
from .live import CurrentTransactionId, LiveEvent, LiveEventType
from .rules import QualityAction, QualityEffect, QualityMetric, QualityRule, QualityRuleState

__all__ = [
    "Accuracy",
    "CurrentTransactionId",
    "GoldScore",
    "LiveEvent",
    "LiveEventType",
    "QualityAction",
    "QualityEffect",
    "QualityMetric",
    "QualityRule",
    "QualityRuleState",
]
