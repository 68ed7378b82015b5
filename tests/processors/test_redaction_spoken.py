"""Spoken and written forms of PII per language: found, typed, and normalised alike."""

from __future__ import annotations

import pytest

from voxledger.processors.redaction import Redactor
from voxledger.processors.redaction._lexicon import load_lexicon
from voxledger.processors.redaction._spoken import NumberReader, iban_ok, luhn_ok, vin_ok

SPOKEN_IBAN = (
    "G B eight two W E S T one two three four five six nine eight seven six five four three two"
)
# (language, utterance, the PII in it, the type it must be redacted as)
CASES = [
    (
        "en",
        "my number is four one five, five five five, oh one nine nine",
        "four one five, five five five, oh one nine nine",
        "PHONE_NUMBER",
    ),
    (
        "en",
        "it's two one two, double five five, oh one, triple four",
        "two one two, double five five, oh one, triple four",
        "PHONE_NUMBER",
    ),
    (
        "en",
        "j o h n dot smith at gmail dot com",
        "j o h n dot smith at gmail dot com",
        "EMAIL_ADDRESS",
    ),
    (
        "en",
        "it's john underscore smith at yahoo dot co dot uk",
        "john underscore smith at yahoo dot co dot uk",
        "EMAIL_ADDRESS",
    ),
    ("en", "I live at 1234 Elm Street", "1234 Elm Street", "ADDRESS"),
    (
        "en",
        "it's twelve thirty four elm street apartment 5",
        "twelve thirty four elm street apartment 5",
        "ADDRESS",
    ),
    (
        "en",
        "the vin is one h g c m eight two six three three a zero zero four three five two",
        "one h g c m eight two six three three a zero zero four three five two",
        "VIN",
    ),
    (
        "en",
        f"my iban is {SPOKEN_IBAN}",
        SPOKEN_IBAN,
        "IBAN_CODE",
    ),
    (
        "en",
        "card number four one one one, one one one one, one one one one, one one one one",
        "four one one one, one one one one, one one one one, one one one one",
        "CREDIT_CARD",
    ),
    (
        "en",
        "my social is one two three, four five, six seven eight nine",
        "one two three, four five, six seven eight nine",
        "US_SSN",
    ),
    (
        "en",
        "I was born on march third nineteen eighty five",
        "march third nineteen eighty five",
        "DATE_OF_BIRTH",
    ),
    ("en", "my date of birth is 03/04/1985", "03/04/1985", "DATE_OF_BIRTH"),
    ("en", "my name is john smith and i need help", "john smith", "PERSON"),
    ("en", "this is maria calling about my bill", "maria", "PERSON"),
    ("en", "it's under garcia", "garcia", "PERSON"),
    ("en", "my order number is 7 7 3 4 1 9", "7 7 3 4 1 9", "ACCOUNT_NUMBER"),
    ("es", "me llamo carlos garcía", "carlos garcía", "PERSON"),
    (
        "es",
        "mi teléfono es seiscientos doce, treinta y cuatro, cincuenta y seis, setenta y ocho",
        "seiscientos doce, treinta y cuatro, cincuenta y seis, setenta y ocho",
        "PHONE_NUMBER",
    ),
    (
        "es",
        "mi correo es ana punto ruiz arroba gmail punto com",
        "ana punto ruiz arroba gmail punto com",
        "EMAIL_ADDRESS",
    ),
    (
        "es",
        "nací el tres de marzo de mil novecientos ochenta y cinco",
        "tres de marzo de mil novecientos ochenta y cinco",
        "DATE_OF_BIRTH",
    ),
    ("fr", "je m'appelle marie dupont", "marie dupont", "PERSON"),
    (
        "fr",
        "mon numéro est zéro six douze trente-quatre cinquante-six soixante-dix-huit",
        "zéro six douze trente-quatre cinquante-six soixante-dix-huit",
        "PHONE_NUMBER",
    ),
    ("fr", "j'habite au 12 rue de la Paix", "12 rue de la Paix", "ADDRESS"),
    ("de", "ich heiße hans müller", "hans müller", "PERSON"),
    (
        "de",
        "meine Nummer ist null eins sieben eins, vier fünf sechs, sieben acht neun null",
        "null eins sieben eins, vier fünf sechs, sieben acht neun null",
        "PHONE_NUMBER",
    ),
    (
        "de",
        "meine Bestellnummer ist vierunddreißig zwölf neunzig",
        "vierunddreißig zwölf neunzig",
        "ACCOUNT_NUMBER",
    ),
    ("ja", "私の名前は田中太郎です。", "田中太郎", "PERSON"),
    (
        "ja",
        "電話番号は〇九〇の一二三四の五六七八です。",
        "〇九〇の一二三四の五六七八",
        "PHONE_NUMBER",
    ),
    ("ja", "生年月日は昭和60年3月3日です。", "昭和60年3月3日", "DATE_OF_BIRTH"),
]


@pytest.mark.parametrize(("language", "text", "value", "entity_type"), CASES)
def test_spoken_pii_is_found_whole(
    redactor: Redactor, language: str, text: str, value: str, entity_type: str
) -> None:
    start = text.index(value)
    spans = redactor.spans(text, language)
    covering = [s for s in spans if s.start <= start and s.end >= start + len(value)]
    assert covering, f"{value!r} not covered: {[(s.type, text[s.start : s.end]) for s in spans]}"
    assert covering[0].type == entity_type


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("en", "I'll refund fifty dollars to your card today."),
        ("en", "We're open from nine thirty to five, Monday through Friday."),
        ("en", "It costs twenty nine ninety nine per month."),
        ("en", "I was charged twice in 2023, 2024 and 2025."),
        ("en", "Your appointment is on 03/04/2025 at 3:30."),
        ("en", "This is ridiculous, I've been waiting since yesterday."),
        ("en", "It's Tuesday already?"),
        ("es", "Le devolveremos cincuenta euros en su tarjeta."),
        ("fr", "Nous vous rembourserons cinquante euros."),
        ("de", "Ich bin Kunde seit zehn Jahren."),
        ("ja", "お客様、少々お待ちください。"),
        # AI disclosures must survive redaction, or the policy cannot see them.
        ("en", "Hi, I'm an AI assistant for Acme support. How can I help today?"),
        ("en", "Yes, I'm an AI, not a person."),
        ("es", "Hola, soy un asistente virtual de IA."),
        ("fr", "Bonjour, je suis une assistante virtuelle, une IA."),
        ("de", "Hallo, ich bin ein KI-Assistent."),
    ],
)
def test_tricky_non_pii_is_left_alone(redactor: Redactor, language: str, text: str) -> None:
    assert redactor.spans(text, language) == []


@pytest.mark.parametrize(
    ("language", "words", "digits"),
    [
        ("en", "four one five five five five oh one nine nine", "4155550199"),
        ("en", "double five triple oh", "55000"),
        ("en", "twelve thirty four", "1234"),
        ("en", "nineteen eighty five", "1985"),
        ("en", "eight hundred five five five", "800555"),
        ("en", "two thousand and five", "2005"),
        ("es", "seiscientos doce treinta y cuatro", "61234"),
        ("es", "veintiocho cero trece", "28013"),
        ("fr", "quatre vingt douze soixante dix sept vingt et un", "927721"),
        ("de", "vierunddreißig neunzehnhundertfünfundachtzig", "341985"),
        ("ja", "〇 九 〇", "090"),
    ],
)
def test_number_words_read_as_digits(language: str, words: str, digits: str) -> None:
    reader = NumberReader(load_lexicon(language))
    morphemes = [m for w in words.split() for m in reader.morphemes(w)]
    assert reader.read(morphemes)[0] == digits


def test_spoken_and_written_forms_normalise_to_one_value(redactor: Redactor) -> None:
    spoken = redactor.spans("my number is four one five, five five five, oh one nine nine", "en")
    written = redactor.spans("my number is (415) 555-0199", "en")
    email_spoken = redactor.spans("it's john dot smith at gmail dot com", "en")
    email_written = redactor.spans("it's John.Smith@Gmail.com", "en")
    assert spoken[0].value == written[0].value == "+14155550199"
    assert email_spoken[0].value == email_written[0].value == "john.smith@gmail.com"


def test_checksums() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("GB82WEST12345698765432") and not iban_ok("GB82WEST12345698765433")
    assert vin_ok("1HGCM82633A004352") and not vin_ok("1HGCM82633A004353")


def test_a_pseudonym_already_in_the_text_is_not_redacted_again(redactor: Redactor) -> None:
    assert redactor.spans("call <PERSON_12> at <PHONE_NUMBER_4821>", "en") == []
