"""The number check's intent, decided by rule after the classifier (hotline.verify_cues):
VERIFICAR at the start of a message always asks for a number check; a full phone number
with a question whether it is real asks for one too, unless the classifier heard a report,
a follow-up, an erasure, a request for a person or an emergency (the EmergencyGuard, after
this component, still raises an emergency whenever the danger lexicon fires).
The patterns are NLU data (nlu_data/verify.yml); the model keeps them."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, INTENT_RANKING_KEY, PREDICTED_CONFIDENCE_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from hotline.verify_cues import KINDS, VerifyCues

VERIFY = "verify_number"
KEPT_INTENTS = ("emergency", "report_case", "follow_up_report", "delete_my_data", "human_handoff")
PATTERNS_FILE = "verify_patterns.json"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class VerifyNumberDetector(GraphComponent):
    """Raises `verify_number` to the top for the command word, or for a phone number with a
    question whether it is real."""

    def __init__(
        self, model_storage: ModelStorage, resource: Resource, patterns: Optional[Dict[str, List[str]]] = None
    ) -> None:
        self._storage = model_storage
        self._resource = resource
        self._set_patterns(patterns or {kind: [] for kind in KINDS})

    def _set_patterns(self, patterns: Dict[str, List[str]]) -> None:
        self.patterns = patterns
        self.cues = VerifyCues.from_patterns(patterns["verify_command"], patterns["verify_question"])

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> VerifyNumberDetector:
        return cls(model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        patterns: Dict[str, List[str]] = {kind: [] for kind in KINDS}
        for regex in training_data.regex_features:
            if regex["name"] in patterns:
                patterns[regex["name"]].append(regex["pattern"])
        self._set_patterns(patterns)
        with self._storage.write_to(self._resource) as directory:
            (directory / PATTERNS_FILE).write_text(json.dumps(patterns, ensure_ascii=False), encoding="utf-8")
        return self._resource

    @classmethod
    def load(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> VerifyNumberDetector:
        try:
            with model_storage.read_from(resource) as directory:
                patterns = json.loads((directory / PATTERNS_FILE).read_text(encoding="utf-8"))
        except (ValueError, FileNotFoundError):
            patterns = None
        return cls(model_storage, resource, patterns)

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            intent = (message.get(INTENT) or {}).get(INTENT_NAME_KEY)
            if self.cues.is_command(text) or (intent not in KEPT_INTENTS and self.cues.asks_about_a_number(text)):
                self._raise_verify(message)
        return messages

    @staticmethod
    def _raise_verify(message: Message) -> None:
        ranking = [r for r in message.get(INTENT_RANKING_KEY) or [] if r.get(INTENT_NAME_KEY) != VERIFY]
        top = {INTENT_NAME_KEY: VERIFY, PREDICTED_CONFIDENCE_KEY: 1.0}
        message.set(INTENT, top, add_to_output=True)
        message.set(INTENT_RANKING_KEY, [top, *ranking], add_to_output=True)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data
