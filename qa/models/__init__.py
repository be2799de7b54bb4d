"""Quality tables, one module per concern; each is listed here so Django finds its models."""

from .agreement import (
    AgreementChanges,
    AgreementReport,
    ConsensusMethod,
    ReportName,
    TaskAgreement,
    TaskConsensus,
)
from .exams import AttemptStatus, Exam, ExamAnswer, ExamAttempt, ExamItem
from .gold import Accuracy, GoldRescore, GoldScore
from .live import CurrentTransactionId, LiveEvent, LiveEventType
from .reviews import (
    ErrorTag,
    Review,
    ReviewAccuracy,
    ReviewerRole,
    ReviewItem,
    ReviewItemState,
    ReviewLayer,
    SamplingBasis,
    Verdict,
)
from .rules import QualityAction, QualityEffect, QualityMetric, QualityRule, QualityRuleState
from .stats import AnnotatorHourStats, StatsCursor

__all__ = [
    "Accuracy",
    "AgreementChanges",
    "AgreementReport",
    "AnnotatorHourStats",
    "AttemptStatus",
    "ConsensusMethod",
    "CurrentTransactionId",
    "ErrorTag",
    "Exam",
    "ExamAnswer",
    "ExamAttempt",
    "ExamItem",
    "GoldRescore",
    "GoldScore",
    "LiveEvent",
    "LiveEventType",
    "QualityAction",
    "QualityEffect",
    "QualityMetric",
    "QualityRule",
    "QualityRuleState",
    "ReportName",
    "Review",
    "ReviewAccuracy",
    "ReviewItem",
    "ReviewItemState",
    "ReviewLayer",
    "ReviewerRole",
    "SamplingBasis",
    "StatsCursor",
    "TaskAgreement",
    "TaskConsensus",
    "Verdict",
]
