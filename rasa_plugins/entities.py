"""Entity extractors that need no training examples: countries as ISO codes (from the
`country_XX` lookup tables, typos forgiven) and report codes in the form staff issue them.
Both keep what they learned in the model, so a trained model needs nothing else on disk."""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Optional

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
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

from hotline.countries import find_countries
from hotline.report_codes import find_codes
from hotline.text import fold_accents

LOOKUP_PREFIX = "country_"
EMERGENCY = "emergency"
FOLLOW_UP = "follow_up_report"
ALIASES_FILE = "country_aliases.json"


def _entity(entity: str, start: int, end: int, text: str, value: str) -> Dict[str, Any]:
    return {"entity": entity, "start": start, "end": end, "value": value, "confidence_entity": 1.0, "text": text}


def _replace_entities(message: Message, entity_type: str, found: List[Dict[str, Any]]) -> None:
    kept = [e for e in message.get(ENTITIES, []) if e.get("entity") != entity_type]
    message.set(ENTITIES, kept + found, add_to_output=True)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=True)
class CountryExtractor(GraphComponent, EntityExtractorMixin):
    """Finds country mentions and gives the ISO code as the entity value."""

    def __init__(
        self, model_storage: ModelStorage, resource: Resource, aliases: Optional[Dict[str, str]] = None
    ) -> None:
        self._storage = model_storage
        self._resource = resource
        self.aliases = aliases or {}

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> CountryExtractor:
        return cls(model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        aliases = {}
        for table in training_data.lookup_tables:
            if table["name"].startswith(LOOKUP_PREFIX):
                code = table["name"][len(LOOKUP_PREFIX) :]
                for alias in table["elements"]:
                    aliases[fold_accents(str(alias).lower()).strip()] = code
        self.aliases = aliases
        with self._storage.write_to(self._resource) as directory:
            (directory / ALIASES_FILE).write_text(json.dumps(aliases, ensure_ascii=False), encoding="utf-8")
        return self._resource

    @classmethod
    def load(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> CountryExtractor:
        try:
            with model_storage.read_from(resource) as directory:
                aliases = json.loads((directory / ALIASES_FILE).read_text(encoding="utf-8"))
        except (ValueError, FileNotFoundError):
            aliases = {}
        return cls(model_storage, resource, aliases)

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            found = [_entity("country", m.start, m.end, m.text, m.code) for m in find_countries(text, self.aliases)]
            _replace_entities(message, "country", self.add_extractor_name(found))
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False)
class ReportCodeExtractor(GraphComponent, EntityExtractorMixin):
    """Finds report codes typed in any case and grouping; the value is TRT-XXXX-XXXX(-C)."""

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> ReportCodeExtractor:
        return cls()

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            found = [_entity("report_code", s, e, text[s:e], code) for s, e, code in find_codes(text)]
            _replace_entities(message, "report_code", self.add_extractor_name(found))
            if found:
                self._read_as_follow_up(message)
        return messages

    @staticmethod
    def _read_as_follow_up(message: Message) -> None:
        """A message carrying a case code is a follow-up, whatever the words around it
        ("seguimiento trt 4281 rfa6 2" reads like a menu choice to the classifier), unless
        it is an emergency: that answer always comes first."""
        intent = message.get(INTENT) or {}
        if intent.get(INTENT_NAME_KEY) in (EMERGENCY, FOLLOW_UP):
            return
        top = {INTENT_NAME_KEY: FOLLOW_UP, PREDICTED_CONFIDENCE_KEY: 1.0}
        ranking = [r for r in message.get(INTENT_RANKING_KEY) or [] if r.get(INTENT_NAME_KEY) != FOLLOW_UP]
        message.set(INTENT, top, add_to_output=True)
        message.set(INTENT_RANKING_KEY, [top, *ranking], add_to_output=True)


NUMBER_WORDS = {
    "uno": "1",
    "primera": "1",
    "primero": "1",
    "dos": "2",
    "segunda": "2",
    "segundo": "2",
    "tres": "3",
    "tercera": "3",
    "tercero": "3",
    "cuatro": "4",
    "cuarta": "4",
    "cuarto": "4",
    "cinco": "5",
    "quinta": "5",
    "quinto": "5",
    "seis": "6",
    "sexta": "6",
    "sexto": "6",
    "siete": "7",
    "septima": "7",
    "septimo": "7",
    "ocho": "8",
    "octava": "8",
    "octavo": "8",
    "nueve": "9",
    "novena": "9",
    "noveno": "9",
}
MAX_OPTION_WORDS = 4


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False)
class MenuOptionExtractor(GraphComponent, EntityExtractorMixin):
    """A menu choice: one digit 1-9 or number word in a short message ("3", "la tres")."""

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> MenuOptionExtractor:
        return cls()

    @staticmethod
    def find_option(text: str) -> Optional[Dict[str, Any]]:
        words = re.findall(r"[0-9]+|[^\W\d_]+", fold_accents(text.lower()))
        if not words or len(words) > MAX_OPTION_WORDS:
            return None
        choices = [w for w in words if (w.isdigit() and len(w) == 1 and w != "0") or w in NUMBER_WORDS]
        if len(choices) != 1:
            return None
        word = choices[0]
        value = word if word.isdigit() else NUMBER_WORDS[word]
        start = fold_accents(text.lower()).find(word)
        return _entity("option", start, start + len(word), text[start : start + len(word)], value)

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            option = self.find_option(message.get(TEXT) or "")
            _replace_entities(message, "option", self.add_extractor_name([option] if option else []))
        return messages
