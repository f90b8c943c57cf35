"""The emergency safety net: a message that describes immediate danger is an emergency,
whatever the classifier or the fallback thought (the contract's first safety rule).

Patterns are NLU data (`regex: danger_strong` and `regex: danger_weak` in
nlu_data/danger_lexicon.yml); the matching rule is hotline.danger. The model keeps the
patterns, so a trained model needs nothing else on disk.
"""

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

from hotline.danger import DangerLexicon

EMERGENCY = "emergency"
PATTERNS_FILE = "danger_patterns.json"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class EmergencyGuard(GraphComponent):
    """Runs after the FallbackClassifier and raises `emergency` to the top when the
    danger lexicon fires; it never lowers an emergency the classifier found."""

    def __init__(
        self, model_storage: ModelStorage, resource: Resource, patterns: Optional[Dict[str, List[str]]] = None
    ) -> None:
        self._storage = model_storage
        self._resource = resource
        self._set_patterns(patterns or {"strong": [], "weak": []})

    def _set_patterns(self, patterns: Dict[str, List[str]]) -> None:
        self.patterns = patterns
        self.lexicon = DangerLexicon.from_patterns(patterns["strong"], patterns["weak"])

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> EmergencyGuard:
        return cls(model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        patterns: Dict[str, List[str]] = {"strong": [], "weak": []}
        for regex in training_data.regex_features:
            if regex["name"] == "danger_strong":
                patterns["strong"].append(regex["pattern"])
            elif regex["name"] == "danger_weak":
                patterns["weak"].append(regex["pattern"])
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
    ) -> EmergencyGuard:
        try:
            with model_storage.read_from(resource) as directory:
                patterns = json.loads((directory / PATTERNS_FILE).read_text(encoding="utf-8"))
        except (ValueError, FileNotFoundError):
            patterns = None
        return cls(model_storage, resource, patterns)

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            if self.lexicon.is_danger(message.get(TEXT) or ""):
                self._raise_emergency(message)
        return messages

    @staticmethod
    def _raise_emergency(message: Message) -> None:
        ranking = [r for r in message.get(INTENT_RANKING_KEY) or [] if r.get(INTENT_NAME_KEY) != EMERGENCY]
        top = {INTENT_NAME_KEY: EMERGENCY, PREDICTED_CONFIDENCE_KEY: 1.0}
        message.set(INTENT, top, add_to_output=True)
        message.set(INTENT_RANKING_KEY, [top, *ranking], add_to_output=True)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data
