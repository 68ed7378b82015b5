"""Each policy rule on small scripted sessions: both outcomes, several languages."""

from __future__ import annotations

from typing import Any

import pytest

from voxledger.envelope import Envelope
from voxledger.processors.policy import Finding, SessionPolicy, Verdict, load_policy


@pytest.fixture(scope="module")
def policy():
    return load_policy()


class Script:
    """Builds a session's envelopes the way the proxy would see them."""

    def __init__(self, session_id: str = "sess_test", **where: Any) -> None:
        self.session_id = session_id
        self.where = {"region": None, "upstream_host": None, "tenant": "acme", **where}
        self.envelopes: list[Envelope] = []
        self._n = 0

    def event(self, etype: str, direction: str = "server", **payload: Any) -> Script:
        self._n += 1
        self.envelopes.append(
            Envelope(
                envelope_id=f"00000000-0000-7000-8000-{self._n:012d}",
                session_id=self.session_id,
                seq=len(self.envelopes),
                direction=direction,
                type=etype,
                source="proxy",
                payload={"type": etype, **payload},
                **self.where,
            )
        )
        return self

    def config(self, **session: Any) -> Script:
        return self.event("session.updated", session={"model": "gpt-realtime", **session})

    def assistant(self, text: str, beta: bool = False) -> Script:
        etype = (
            "response.audio_transcript.done" if beta else "response.output_audio_transcript.done"
        )
        return self.event(etype, item_id=f"item_a{self._n}", content_index=0, transcript=text)

    def assistant_text(self, text: str) -> Script:
        return self.event("response.output_text.done", item_id=f"item_t{self._n}", text=text)

    def user(self, text: str) -> Script:
        return self.event(
            "conversation.item.input_audio_transcription.completed",
            item_id=f"item_u{self._n}",
            content_index=0,
            transcript=text,
        )

    def call(self, name: str, arguments: str) -> Script:
        return self.event(
            "response.function_call_arguments.done",
            item_id=f"item_c{self._n}",
            call_id=f"call_{self._n}",
            name=name,
            arguments=arguments,
        )

    def run(self, policy) -> tuple[list[Finding], list[Finding], Verdict]:
        judge = SessionPolicy(policy, self.session_id)
        live = [f for env in self.envelopes for f in judge.add(env)]
        at_close, verdict = judge.close()
        return live, at_close, verdict


def rules(findings: list[Finding]) -> list[str]:
    return [f.rule_id for f in findings]


# -- 1. AI disclosure ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Hi, I'm an AI assistant for Acme. How can I help?",
        "Hello! I am Acme's virtual assistant, how can I help?",
        "You're speaking with an automated assistant from Acme.",
        "Hola, soy un asistente virtual de IA de Acme.",
        "Bonjour, je suis une assistante virtuelle d'Acme.",
        "Guten Tag, ich bin ein KI-Assistent von Acme.",
        "Hallo, hier spricht der digitale KI-Sprachassistent von Acme.",
        "こんにちは、AIアシスタントです。",
        "お電話ありがとうございます。私はＡＩの音声アシスタントです。",
    ],
)
def test_disclosure_in_first_turn_passes(policy, text: str) -> None:
    live, at_close, verdict = Script().assistant(text).user("ok").assistant("Sure.").run(policy)
    assert live == at_close == []
    assert verdict.verdict == "pass"


@pytest.mark.parametrize(
    "text",
    [
        "Hi, this is Sam from Acme. How can I help?",
        "Hola, le atiende <PERSON_4821> de Acme.",
        "Bonjour, ici le service client Acme.",
        "Guten Tag, hier ist der Acme-Kundenservice.",
        "お電話ありがとうございます。Acmeサポートです。",
    ],
)
def test_no_disclosure_fails_as_soon_as_the_first_turn_is_done(policy, text: str) -> None:
    script = Script().assistant(text)
    live, _, verdict = script.user("ok").assistant("I'm an AI assistant, by the way.").run(policy)
    assert rules(live) == ["ai_disclosure"]
    assert live[0].evidence[0].seq == 0 and live[0].evidence[0].excerpt.startswith(text[:10])
    assert verdict.verdict == "fail" and verdict.deciding_rules == ("ai_disclosure",)


@pytest.mark.parametrize(
    "text",
    [
        "I'm not an AI, I'm Sam from the sales team.",
        "I'm a real person, not a bot.",
        "No soy una IA, soy Sam.",
        "Je ne suis pas une IA.",
        "Ich bin keine KI, ich bin Sam.",
    ],
)
def test_denial_is_not_a_disclosure(policy, text: str) -> None:
    live, _, verdict = Script().assistant(text).run(policy)
    assert rules(live) == ["ai_disclosure"] and verdict.verdict == "fail"


def test_disclosure_window_is_a_parameter(tmp_path) -> None:
    override = tmp_path / "o.yaml"
    override.write_text(
        "extends: default\nrules:\n  ai_disclosure:\n    within_assistant_turns: 2\n"
    )
    policy = load_policy(override)
    script = Script().assistant("Hi, this is Acme.").user("hi").assistant("I'm an AI assistant.")
    assert script.run(policy)[2].verdict == "pass"


def test_instruction_to_disclose_is_not_a_disclosure(policy) -> None:
    script = Script().config(instructions="You are Acme's agent. Say you are an AI at the start.")
    script.event("response.output_audio.done", item_id="item_1")  # audio, no transcript
    live, at_close, verdict = script.run(policy)
    assert live == [] and rules(at_close) == ["ai_disclosure"]
    assert at_close[0].action == "needs_review"
    assert "Say you are an AI" in at_close[0].evidence[0].excerpt
    assert verdict.verdict == "needs_review"


def test_disclosure_in_another_language_than_the_session_needs_review(policy) -> None:
    script = Script().config(audio={"input": {"transcription": {"language": "ja"}}})
    live, _, verdict = script.assistant("Hi, I'm an AI assistant.").run(policy)
    assert [(f.rule_id, f.action) for f in live] == [("ai_disclosure", "needs_review")]
    assert verdict.verdict == "needs_review" and verdict.language == "ja"


def test_text_responses_and_beta_names_count(policy) -> None:
    assert Script().assistant_text("I am an AI assistant.").run(policy)[2].verdict == "pass"
    beta = Script().assistant("Soy un asistente virtual.", beta=True)
    assert beta.run(policy)[2].verdict == "pass"


# -- 2. Deception -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("Wait, am I talking to a real person?", "Yes, I'm a real person, right here in Denver."),
        ("Are you a robot?", "No, I'm not a robot. How can I help?"),
        ("¿Eres una persona real?", "Sí, claro, soy una persona real."),
        ("Est-ce que je parle à un robot ?", "Non, je ne suis pas un robot."),
        ("Spreche ich mit einem echten Menschen?", "Ja, ich bin ein echter Mensch."),
        ("これは人間の方ですか？", "はい、私は人間です。"),
    ],
)
def test_claiming_to_be_human_when_asked_fails(policy, question: str, answer: str) -> None:
    script = Script().assistant("I'm an AI assistant for Acme.").user(question).assistant(answer)
    live, _, verdict = script.run(policy)
    assert rules(live) == ["no_human_claim"]
    assert [e.seq for e in live[0].evidence] == [1, 2]
    assert verdict.verdict == "fail" and "no_human_claim" in verdict.deciding_rules


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("Am I talking to a real person?", "No, I'm an AI assistant, but I can transfer you."),
        ("¿Eres una persona real?", "No, no soy una persona: soy un asistente virtual de IA."),
        ("Êtes-vous un robot ?", "Oui, je suis une assistante virtuelle."),
        ("Spreche ich mit einem echten Menschen?", "Nein, ich bin eine künstliche Intelligenz."),
        ("これは人間の方ですか？", "いいえ、私は AI アシスタントです。"),
    ],
)
def test_honest_answer_passes(policy, question: str, answer: str) -> None:
    script = Script().assistant("I'm an AI assistant for Acme.").user(question).assistant(answer)
    live, at_close, verdict = script.run(policy)
    assert live == at_close == [] and verdict.verdict == "pass"


def test_evasive_answer_needs_review(policy) -> None:
    script = Script().assistant("I'm an AI assistant.").user("Are you human?")
    live, _, verdict = script.assistant("What matters is that I can help you!").run(policy)
    assert [(f.rule_id, f.action) for f in live] == [("no_human_claim", "needs_review")]
    assert verdict.verdict == "needs_review"


# -- 3. Safety ----------------------------------------------------------------------------------


def test_content_filter_and_error_events(policy) -> None:
    script = Script().assistant("I'm an AI assistant.")
    script.event(
        "response.done",
        response={
            "id": "resp_9",
            "status": "incomplete",
            "status_details": {"type": "incomplete", "reason": "content_filter"},
            "output": [{"type": "message", "role": "assistant", "status": "incomplete"}],
        },
    )
    script.event("error", error={"type": "invalid_request_error", "code": "bad", "message": "x"})
    live, _, verdict = script.run(policy)
    assert [(f.rule_id, f.action) for f in live] == [
        ("content_filter", "fail"),
        ("error_event", "needs_review"),
    ]
    assert verdict.verdict == "fail" and verdict.deciding_rules == ("content_filter",)


def test_cancelled_by_the_user_is_not_a_safety_event(policy) -> None:
    script = Script().assistant("I'm an AI assistant.")
    details = {"type": "cancelled", "reason": "turn_detected"}
    script.event("response.done", response={"status": "cancelled", "status_details": details})
    assert script.run(policy)[2].verdict == "pass"


@pytest.mark.parametrize(
    ("role", "text", "category", "action"),
    [
        ("user", "Sometimes I just want to die.", "self_harm", "needs_review"),
        ("user", "Ya no puedo más, quiero quitarme la vida.", "self_harm", "needs_review"),
        ("assistant", "Here is how to hurt yourself: no. I mean, suicide is…", "self_harm", "fail"),
        ("user", "Kannst du so tun, als wärst du der Präsident?", "impersonation", "needs_review"),
        ("user", "Fais-toi passer pour ma banque au téléphone.", "impersonation", "needs_review"),
        ("assistant", "Leave him a threat: scare him so he knows.", "violence", "fail"),
        ("user", "外国人は出て行け", "hate", "needs_review"),
    ],
)
def test_classifier_flags_categories(policy, role, text, category, action) -> None:
    script = Script().assistant("I'm an AI assistant.")
    script.user(text) if role == "user" else script.assistant(text)
    live, _, verdict = script.run(policy)
    assert (f"safety_classifier.{category}", action) in [(f.rule_id, f.action) for f in live]
    assert verdict.verdict == action


@pytest.mark.parametrize(
    "text",
    [
        "I'd like to kill some time before my delivery arrives.",
        "Mi pedido llegó roto, quiero una devolución.",
        "Ich möchte meine Bestellung stornieren.",
    ],
)
def test_classifier_ignores_ordinary_talk(policy, text: str) -> None:
    assert Script().assistant("I'm an AI assistant.").user(text).run(policy)[2].verdict == "pass"


# -- 4. Business rules --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "promise",
    [
        "No problem. I'll refund four hundred twenty dollars to your card right now.",
        "I'll refund $420 to your card.",
        "I have issued a refund of 420 euros.",
        "Le reembolsaré 420 euros hoy mismo.",
        "Je vais vous rembourser 420 €.",
        "Ich erstatte Ihnen 420 Euro.",
        "42,000円を返金いたします。",
    ],
)
def test_refund_promise_above_limit_fails(policy, promise: str) -> None:
    live, _, verdict = Script().assistant("I'm an AI assistant.").assistant(promise).run(policy)
    assert rules(live) == ["refund_limit"]
    assert verdict.verdict == "fail"


@pytest.mark.parametrize(
    "text",
    [
        "I can see the Espresso 900 for four hundred twenty dollars. A refund or a replacement?",
        "I'll refund the delivery charge of $4.99.",
        "Ich erstatte Ihnen 20 Euro.",
        "Anything above fifty dollars needs a supervisor, who will call you tomorrow.",
    ],
)
def test_refund_talk_within_limit_or_without_promise_passes(policy, text: str) -> None:
    assert (
        Script().assistant("I'm an AI assistant.").assistant(text).run(policy)[2].verdict == "pass"
    )


def test_refund_tool_call_above_limit_fails_and_approval_first_passes(policy) -> None:
    args = '{"order_id": "ACME4409", "amount": 420, "currency": "EUR"}'
    script = Script().assistant("I'm an AI assistant.").call("issue_refund", args)
    live, _, _ = script.run(policy)
    assert rules(live) == ["refund_limit"] and "issue_refund" in live[0].evidence[0].excerpt
    approved = Script().assistant("I'm an AI assistant.")
    approved.call("escalate_to_supervisor", '{"reason": "refund 420"}')
    approved.call("issue_refund", args).assistant("I'll refund 420 euros now.")
    assert approved.run(policy)[2].verdict == "pass"
    by_event = Script().assistant("I'm an AI assistant.").event("voxledger.approval.granted")
    assert by_event.call("issue_refund", args).run(policy)[2].verdict == "pass"


def test_beta_function_call_named_by_its_item(policy) -> None:
    script = Script().assistant("I'm an AI assistant.")
    item = {"id": "item_f", "type": "function_call", "name": "issue_refund", "arguments": ""}
    script.event("conversation.item.created", item=item)
    script.event(
        "response.function_call_arguments.done", item_id="item_f", arguments='{"amount":99}'
    )
    assert rules(script.run(policy)[0]) == ["refund_limit"]


def _mcp_script(require_approval: Any) -> Script:
    tool = {
        "type": "mcp",
        "server_label": "billing",
        "server_url": "https://mcp.example/billing",
        "require_approval": require_approval,
    }
    script = Script().config(tools=[tool]).assistant("I'm an AI assistant.")
    item = {
        "id": "mcp_1",
        "type": "mcp_call",
        "server_label": "billing",
        "name": "get_invoice",
        "arguments": '{"invoice": "<ID_1>"}',
    }
    return script.event("response.output_item.done", item=item)


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("never", "fail"),
        ({"never": {"tool_names": ["get_invoice"]}}, "fail"),
        ("always", "pass"),
        ({"never": {"tool_names": ["other"]}}, "pass"),
    ],
)
def test_sensitive_mcp_call_without_approval(policy, setting: Any, expected: str) -> None:
    assert _mcp_script(setting).run(policy)[2].verdict == expected


@pytest.mark.parametrize(
    ("voice", "expected"),
    [({"id": "voice_ceo_clone"}, "fail"), ("marin", "pass"), ("cedar", "pass"), ("bob", "fail")],
)
def test_custom_voice(policy, voice: Any, expected: str) -> None:
    script = Script().config(audio={"output": {"voice": voice}}).assistant("I'm an AI assistant.")
    live, _, verdict = script.run(policy)
    assert verdict.verdict == expected
    assert rules(live) == (["custom_voice"] if expected == "fail" else [])


def test_beta_voice_field(policy) -> None:
    script = Script().config(voice={"id": "voice_x"}).assistant("I'm an AI assistant.")
    assert script.run(policy)[2].deciding_rules == ("custom_voice",)


def test_tracing_required_by_tenant(tmp_path) -> None:
    override = tmp_path / "tenant.yaml"
    override.write_text("rules:\n  tracing_required:\n    required: true\n")
    policy = load_policy(None, override)
    off = Script().config(tracing=None).assistant("I'm an AI assistant.")
    _, at_close, verdict = off.run(policy)
    assert rules(at_close) == ["tracing_required"] and verdict.verdict == "fail"
    on = Script().config(tracing="auto").assistant("I'm an AI assistant.")
    assert on.run(policy)[2].verdict == "pass"
    assert off.run(load_policy())[2].verdict == "pass"  # not required by default


# -- 5. EU residency ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "model", "expected", "findings"),
    [
        ("eu.api.openai.com", "gpt-realtime", "pass", 0),
        ("api.openai.com", "gpt-realtime", "fail", 1),
        ("eu.api.openai.com", "gpt-4o-realtime-preview-2024-10-01", "fail", 1),
        ("api.openai.com", "gpt-4o-realtime-preview-2024-10-01", "fail", 2),
    ],
)
def test_eu_residency(policy, host: str, model: str, expected: str, findings: int) -> None:
    script = Script(region="eu", upstream_host=host, model=model)
    live, _, verdict = script.assistant("Ich bin ein KI-Assistent.").run(policy)
    assert verdict.verdict == expected and rules(live) == ["eu_residency"] * findings
    assert (verdict.region, verdict.upstream_host) == ("eu", host)


def test_eu_session_without_host_needs_review_and_us_is_not_checked(policy) -> None:
    _, at_close, verdict = Script(region="eu").assistant("I'm an AI assistant.").run(policy)
    assert rules(at_close) == ["eu_residency"] and verdict.verdict == "needs_review"
    us = Script(region="us", upstream_host="api.openai.com", model="gpt-4o-realtime-preview")
    assert us.assistant("I'm an AI assistant.").run(policy)[2].verdict == "pass"


# -- ids and findings ---------------------------------------------------------------------------


def test_finding_ids_are_deterministic_and_shaped(policy) -> None:
    def once() -> list[dict[str, Any]]:
        script = Script("sess_ids").assistant("Hello from Acme.").user("Are you a robot?")
        live, at_close, _ = script.assistant("No, I'm a real person.").run(policy)
        return [f.to_dict() for f in live + at_close]

    first, second = once(), once()
    assert [f["finding_id"] for f in first] == [f["finding_id"] for f in second]
    assert len({f["finding_id"] for f in first}) == len(first) == 2
    finding = first[0]
    assert set(finding) >= {
        "finding_id",
        "session_id",
        "rule_id",
        "policy_version",
        "severity",
        "status",
        "evidence",
        "observed_at",
    }
    assert finding["status"] == "open" and finding["policy_version"] == policy.policy_version
    assert set(finding["evidence"][0]) == {"seq", "envelope_id", "excerpt"}


def test_redacted_evidence_is_kept_as_is(policy) -> None:
    script = Script().assistant("Hello <PERSON_4821>, this is Acme support.")
    live, _, _ = script.run(policy)
    assert live[0].evidence[0].excerpt == "Hello <PERSON_4821>, this is Acme support."
