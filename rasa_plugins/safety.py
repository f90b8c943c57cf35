"""The contract's two safety rules, after the classifier and the FallbackClassifier:

1. A message that describes immediate danger is an emergency, whatever the classifier or
   the fallback thought: the danger lexicon raises `emergency` to the top.
2. An off-topic message must not raise an alarm: when the classifier alone (no danger
   phrase) says `emergency` or `report_case` with less than `min_alarm_confidence`, the
   message falls back instead, and the person is asked to rephrase (the answer still
   says to write AUXILIO when in danger).

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
ALARM_INTENTS = ("emergency", "report_case")
FALLBACK = "nlu_fallback"
PATTERNS_FILE = "danger_patterns.json"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class EmergencyGuard(GraphComponent):
    """Runs after the FallbackClassifier and raises `emergency` to the top when the
    danger lexicon fires; it never lowers an emergency the classifier found."""

    def __init__(
        self,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        patterns: Optional[Dict[str, List[str]]] = None,
    ) -> None:
        self.min_alarm_confidence = float({**self.get_default_config(), **config}["min_alarm_confidence"])
        self._storage = model_storage
        self._resource = resource
        self._set_patterns(patterns or {"strong": [], "weak": [], "dampeners": []})

    def _set_patterns(self, patterns: Dict[str, List[str]]) -> None:
        self.patterns = patterns
        self.lexicon = DangerLexicon.from_patterns(patterns["strong"], patterns["weak"], patterns.get("dampeners", []))

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> EmergencyGuard:
        return cls(config, model_storage, resource)

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        return {"min_alarm_confidence": 0.0}

    def train(self, training_data: TrainingData) -> Resource:
        patterns: Dict[str, List[str]] = {"strong": [], "weak": [], "dampeners": []}
        kinds = {"danger_strong": "strong", "danger_weak": "weak", "danger_dampener": "dampeners"}
        for regex in training_data.regex_features:
            if regex["name"] in kinds:
                patterns[kinds[regex["name"]]].append(regex["pattern"])
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
        return cls(config, model_storage, resource, patterns)

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            if self.lexicon.is_danger(message.get(TEXT) or ""):
                self._raise_emergency(message)
            elif self._is_weak_alarm(message):
                self._fall_back(message)
        return messages

    def _is_weak_alarm(self, message: Message) -> bool:
        intent = message.get(INTENT) or {}
        return (
            intent.get(INTENT_NAME_KEY) in ALARM_INTENTS
            and intent.get(PREDICTED_CONFIDENCE_KEY, 0.0) < self.min_alarm_confidence
        )

    @staticmethod
    def _fall_back(message: Message) -> None:
        confidence = (message.get(INTENT) or {}).get(PREDICTED_CONFIDENCE_KEY, 0.0)
        fallback = {INTENT_NAME_KEY: FALLBACK, PREDICTED_CONFIDENCE_KEY: confidence}
        ranking = [r for r in message.get(INTENT_RANKING_KEY) or [] if r.get(INTENT_NAME_KEY) != FALLBACK]
        message.set(INTENT, fallback, add_to_output=True)
        message.set(INTENT_RANKING_KEY, [fallback, *ranking], add_to_output=True)

    @staticmethod
    def _raise_emergency(message: Message) -> None:
        ranking = [r for r in message.get(INTENT_RANKING_KEY) or [] if r.get(INTENT_NAME_KEY) != EMERGENCY]
        top = {INTENT_NAME_KEY: EMERGENCY, PREDICTED_CONFIDENCE_KEY: 1.0}
        message.set(INTENT, top, add_to_output=True)
        message.set(INTENT_RANKING_KEY, [top, *ranking], add_to_output=True)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data
