"""The action server's actions (rasa-sdk, Python 3.11+). Content turns need no action:
they are responses built from content/. Actions are for what must be computed: the
job-offer verdict, the anonymous report, follow-up with a case code, erasure, the
request for a person (live hand-off), the number check (VERIFICAR) and the shelters of
the services directory."""

from actions.erasure import ActionDeleteMyData
from actions.follow_up import (
    ActionAskFollowupAddition,
    ActionFollowUpDone,
    ActionKeepFollowupText,
    ActionStartFollowUp,
    ValidateFollowUpForm,
)
from actions.handoff import ActionRequestHandoff
from actions.job_offer import ActionJobOfferVerdict
from actions.report import (
    ActionAskReportConfirm,
    ActionKeepReportText,
    ActionStartReport,
    ActionSubmitReport,
    ValidateReportForm,
)
from actions.shelters import ActionAnswerShelter
from actions.verify import ActionVerifyNumber

__all__ = [
    "ActionAnswerShelter",
    "ActionAskFollowupAddition",
    "ActionAskReportConfirm",
    "ActionDeleteMyData",
    "ActionFollowUpDone",
    "ActionJobOfferVerdict",
    "ActionKeepFollowupText",
    "ActionKeepReportText",
    "ActionRequestHandoff",
    "ActionStartFollowUp",
    "ActionStartReport",
    "ActionSubmitReport",
    "ActionVerifyNumber",
    "ValidateFollowUpForm",
    "ValidateReportForm",
]
