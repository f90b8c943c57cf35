"""The action server's actions (rasa-sdk, Python 3.11+). Content turns need no action:
they are responses built from content/. Actions are for what must be computed."""

from actions.job_offer import ActionJobOfferVerdict

__all__ = ["ActionJobOfferVerdict"]
