"""Rasa's logistic regression with the two settings it does not expose, chosen by
measurement (bench/nlu_eval.py): features scaled to unit length with sublinear counts, so
a long story is not more confident than a short message just for having more words, and
the regularisation strength C."""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np
from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.logistic_regression_classifier import LogisticRegressionClassifier
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, INTENT_RANKING_KEY, PREDICTED_CONFIDENCE_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from scipy.sparse import csr_matrix
from sklearn.preprocessing import normalize


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class ScaledLogisticRegressionClassifier(LogisticRegressionClassifier):
    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        return {**LogisticRegressionClassifier.get_default_config(), "C": 1.0, "sublinear_tf": True}

    def __init__(self, config: Dict[str, Any], name: str, model_storage: ModelStorage, resource: Resource) -> None:
        super().__init__(config, name, model_storage, resource)
        self.clf.set_params(C=float(self.config["C"]))

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> ScaledLogisticRegressionClassifier:
        return cls(config, execution_context.node_name, model_storage, resource)

    def process(self, messages: List[Message]) -> List[Message]:
        """Messages with nothing to read (empty, blank, unknown symbols only; the tokenizer reads emoji as words) get no
        intent, so the FallbackClassifier asks the person to rephrase."""
        readable = [m for m in messages if m.get_sparse_features(attribute=TEXT)[1] is not None]
        unreadable = [m for m in messages if m.get_sparse_features(attribute=TEXT)[1] is None]
        for message in unreadable:
            message.set(INTENT, {INTENT_NAME_KEY: None, PREDICTED_CONFIDENCE_KEY: 0.0}, add_to_output=True)
            message.set(INTENT_RANKING_KEY, [], add_to_output=True)
        if readable:
            super().process(readable)
        return messages

    def _create_X(self, messages: List[Message]) -> csr_matrix:
        X = csr_matrix(super()._create_X(messages), dtype=np.float64)
        if self.config["sublinear_tf"]:
            X.data = np.log1p(np.abs(X.data))
        return normalize(X, norm="l2")
