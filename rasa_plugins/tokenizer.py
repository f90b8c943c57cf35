"""A whitespace tokenizer that reads phone Spanish: lower case, no accents, no stutter
("auxiliooo"), SMS abbreviations spelled out (xq, dnd, xfa), laughter as one word, words
glued by punctuation apart ("saber.que") and answer emoji as words."""

from __future__ import annotations

from typing import Any, Dict, List

from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.tokenizers.tokenizer import Token
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.nlu.training_data.message import Message

from hotline.text import emoji_words, is_emoji_only, normalize_token


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=False)
class SmsTokenizer(WhitespaceTokenizer):
    """Tokens keep their offsets in the original text; only their text is normalised."""

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> SmsTokenizer:
        return cls(config)

    def tokenize(self, message: Message, attribute: str) -> List[Token]:
        text = message.get(attribute) or ""
        tokens = []
        for token in super().tokenize(message, attribute):
            if is_emoji_only(token.text):
                continue  # a message of emoji only comes back whole: its emoji are read below
            for part in normalize_token(token.text).split():
                tokens.append(Token(part, token.start, token.end, lemma=part))
        end = len(text)
        tokens.extend(Token(word, end, end, lemma=word) for word in emoji_words(text))
        return tokens
