from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Thumbs(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    THUMBS_UNSPECIFIED: _ClassVar[Thumbs]
    THUMBS_UP: _ClassVar[Thumbs]
    THUMBS_DOWN: _ClassVar[Thumbs]
THUMBS_UNSPECIFIED: Thumbs
THUMBS_UP: Thumbs
THUMBS_DOWN: Thumbs

class HumanLabel(_message.Message):
    __slots__ = ("metric", "passed")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    metric: str
    passed: bool
    def __init__(self, metric: _Optional[str] = ..., passed: _Optional[bool] = ...) -> None: ...

class Feedback(_message.Message):
    __slots__ = ("trace_id", "span_id", "feedback_id", "thumbs", "rating", "rating_max", "regenerated", "edited_text", "comment", "source", "time_unix_nano", "labels")
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_ID_FIELD_NUMBER: _ClassVar[int]
    THUMBS_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    RATING_MAX_FIELD_NUMBER: _ClassVar[int]
    REGENERATED_FIELD_NUMBER: _ClassVar[int]
    EDITED_TEXT_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    trace_id: str
    span_id: str
    feedback_id: str
    thumbs: Thumbs
    rating: float
    rating_max: float
    regenerated: bool
    edited_text: str
    comment: str
    source: str
    time_unix_nano: int
    labels: _containers.RepeatedCompositeFieldContainer[HumanLabel]
    def __init__(self, trace_id: _Optional[str] = ..., span_id: _Optional[str] = ..., feedback_id: _Optional[str] = ..., thumbs: _Optional[_Union[Thumbs, str]] = ..., rating: _Optional[float] = ..., rating_max: _Optional[float] = ..., regenerated: _Optional[bool] = ..., edited_text: _Optional[str] = ..., comment: _Optional[str] = ..., source: _Optional[str] = ..., time_unix_nano: _Optional[int] = ..., labels: _Optional[_Iterable[_Union[HumanLabel, _Mapping]]] = ...) -> None: ...

class SubmitFeedbackRequest(_message.Message):
    __slots__ = ("feedback",)
    FEEDBACK_FIELD_NUMBER: _ClassVar[int]
    feedback: _containers.RepeatedCompositeFieldContainer[Feedback]
    def __init__(self, feedback: _Optional[_Iterable[_Union[Feedback, _Mapping]]] = ...) -> None: ...

class SubmitFeedbackResponse(_message.Message):
    __slots__ = ("accepted", "queued_for_judging", "awaiting_trace")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FOR_JUDGING_FIELD_NUMBER: _ClassVar[int]
    AWAITING_TRACE_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    queued_for_judging: int
    awaiting_trace: int
    def __init__(self, accepted: _Optional[int] = ..., queued_for_judging: _Optional[int] = ..., awaiting_trace: _Optional[int] = ...) -> None: ...

class GetTraceRequest(_message.Message):
    __slots__ = ("trace_id",)
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    trace_id: str
    def __init__(self, trace_id: _Optional[str] = ...) -> None: ...

class Evaluation(_message.Message):
    __slots__ = ("span_id", "metric", "score", "passed", "tier", "judge_model", "judge_version", "service", "prompt_version", "model", "fingerprint", "stratum", "probability", "time_unix_nano")
    SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    JUDGE_MODEL_FIELD_NUMBER: _ClassVar[int]
    JUDGE_VERSION_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    PROMPT_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    STRATUM_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    span_id: str
    metric: str
    score: float
    passed: bool
    tier: str
    judge_model: str
    judge_version: str
    service: str
    prompt_version: str
    model: str
    fingerprint: str
    stratum: str
    probability: float
    time_unix_nano: int
    def __init__(self, span_id: _Optional[str] = ..., metric: _Optional[str] = ..., score: _Optional[float] = ..., passed: _Optional[bool] = ..., tier: _Optional[str] = ..., judge_model: _Optional[str] = ..., judge_version: _Optional[str] = ..., service: _Optional[str] = ..., prompt_version: _Optional[str] = ..., model: _Optional[str] = ..., fingerprint: _Optional[str] = ..., stratum: _Optional[str] = ..., probability: _Optional[float] = ..., time_unix_nano: _Optional[int] = ...) -> None: ...

class Alert(_message.Message):
    __slots__ = ("alert_id", "time_unix_nano", "series", "cause", "detector", "summary", "effect", "ci_low", "ci_high", "p_value")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    EFFECT_FIELD_NUMBER: _ClassVar[int]
    CI_LOW_FIELD_NUMBER: _ClassVar[int]
    CI_HIGH_FIELD_NUMBER: _ClassVar[int]
    P_VALUE_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    time_unix_nano: int
    series: str
    cause: str
    detector: str
    summary: str
    effect: float
    ci_low: float
    ci_high: float
    p_value: float
    def __init__(self, alert_id: _Optional[str] = ..., time_unix_nano: _Optional[int] = ..., series: _Optional[str] = ..., cause: _Optional[str] = ..., detector: _Optional[str] = ..., summary: _Optional[str] = ..., effect: _Optional[float] = ..., ci_low: _Optional[float] = ..., ci_high: _Optional[float] = ..., p_value: _Optional[float] = ...) -> None: ...

class GetTraceResponse(_message.Message):
    __slots__ = ("evaluations", "alerts", "feedback")
    EVALUATIONS_FIELD_NUMBER: _ClassVar[int]
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_FIELD_NUMBER: _ClassVar[int]
    evaluations: _containers.RepeatedCompositeFieldContainer[Evaluation]
    alerts: _containers.RepeatedCompositeFieldContainer[Alert]
    feedback: _containers.RepeatedCompositeFieldContainer[Feedback]
    def __init__(self, evaluations: _Optional[_Iterable[_Union[Evaluation, _Mapping]]] = ..., alerts: _Optional[_Iterable[_Union[Alert, _Mapping]]] = ..., feedback: _Optional[_Iterable[_Union[Feedback, _Mapping]]] = ...) -> None: ...
