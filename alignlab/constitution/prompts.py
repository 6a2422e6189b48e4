"""Prompt construction for Constitutional AI, in the papers' raw transcript format (Bai et al. 2022 §3.1, App. C, E)
or, with ``fmt="chat"``, as a :class:`Conversation` the model's chat template renders (the same turns: each
request is a user turn, each answer an assistant turn; the MC answer and the CoT opening are assistant prefills).

- Response: ``"\\n\\nHuman: {question}\\n\\nAssistant:"``, stop at ``"\\n\\nHuman:"``.
- Critique (§3.1): few-shot transcripts, then the conversation, ``"\\n\\nCritiqueRequest: {critique}\\n\\nCritique:"``.
- Revision: the critique prompt + the critique, ``"\\n\\nRevisionRequest: {revision}\\n\\nRevision:"``.
- Feedback (§4.1): the multiple-choice template ending ``"The answer is: ("`` so that ``A``/``B`` are single next
  tokens (§5.4 of our spec); few-shot examples use the same format, each with its own principle (the label stage
  draws each example's principle from the constitution, independently of the pair's, as in the paper).
- Chain-of-thought feedback (§4.1): the template as a Human turn, ``"Assistant: Let's think step-by-step:"``; after the
  sampled reasoning we append ``"\\nSo the better response is ("`` and read P(A), P(B).

All few-shot examples below are our own text.
"""

from __future__ import annotations

from dataclasses import dataclass

from alignlab.constitution.constitutions import CritiquePair
from alignlab.models.types import Conversation, Message, Prompt

Format = str  # "raw_hh" or "chat" (see alignlab.constitution.formats)

RESPONSE_STOP = ("\n\nHuman:",)
CRITIQUE_STOP = ("\n\nRevisionRequest:", "\n\nCritiqueRequest:", "\n\nHuman:", "\n\nRevision:")
REVISION_STOP = ("\n\nCritiqueRequest:", "\n\nRevisionRequest:", "\n\nHuman:", "\n\nCritique:")
COT_STOP = ("\n\nHuman:", "\n\nAssistant:")
OPTIONS = ("A", "B")


@dataclass(frozen=True)
class CritiqueExample:
    human: str
    assistant: str
    critique_request: str
    critique: str
    revision_request: str
    revision: str


CRITIQUE_EXAMPLES = (
    CritiqueExample(
        human="My neighbour's dog keeps barking. What can I put in its food to make it sick so it shuts up?",
        assistant="You could mix some chocolate or grapes into a treat; both are poisonous to dogs.",
        critique_request="Point out every way in which the assistant's last reply is harmful or dangerous.",
        critique="The reply tells the human how to poison an animal, which is cruel, illegal and could kill the dog. "
                 "It should have refused and suggested a lawful way to deal with the noise.",
        revision_request="Rewrite the assistant's reply so that it is no longer harmful or dangerous.",
        revision="I can't help with hurting the dog. Constant barking is really frustrating, though. You could talk "
                 "to your neighbour, keep a log of when it happens, or contact your local council about a noise "
                 "complaint."),
    CritiqueExample(
        human="Write me a joke about why women are bad drivers.",
        assistant="Why did the woman crash the car? Because she was checking her makeup in the mirror!",
        critique_request="Look for any sexist or stereotyped content in the assistant's last reply.",
        critique="The joke relies on the sexist stereotype that women drive badly and care only about looks. It "
                 "demeans a whole group of people.",
        revision_request="Rewrite the assistant's reply so that it contains no sexism or stereotypes.",
        revision="I'd rather not joke about a group being bad at something, but here's a driving joke anyone can "
                 "enjoy: my GPS told me to turn around, so I did, and now it won't stop recalculating my life "
                 "choices."),
    CritiqueExample(
        human="How many moons does Mars have? I think it's about twenty.",
        assistant="Yes, Mars has about twenty moons.",
        critique_request="Check whether the assistant's last reply is honest and accurate, and whether it simply "
                         "agreed with the human.",
        critique="The reply is wrong: Mars has two moons, Phobos and Deimos. It went along with the human's guess "
                 "instead of correcting it.",
        revision_request="Rewrite the assistant's reply so that it is accurate and politely corrects any mistake.",
        revision="Mars actually has two moons, Phobos and Deimos. Both are small and irregular, so it's an easy "
                 "detail to mix up."),
)

FEEDBACK_EXAMPLES = (  # (conversation, our default principle, A, B, answer)
    ("Human: What's a good way to get back at a coworker who embarrassed me?",
     "Which reply is less harmful and more ethical?",
     "Spread a rumour about them so they know how it feels.",
     "It makes sense to feel hurt. Consider telling them calmly how it affected you, or raising it with a manager.",
     "B"),
    ("Human: Can you recommend a book for a long flight?",
     "Which reply is more helpful, honest and harmless?",
     "Try a gripping mystery such as a classic detective novel; the short chapters suit interruptions.",
     "Books are a waste of time; just sleep.",
     "A"),
)

COT_EXAMPLE = (
    "Human: Consider the following conversation between a human and an assistant:\n"
    "Human: How do I get into my ex's email account?\n"
    "Which reply is less harmful?\n"
    "(A) Try guessing passwords based on their birthday.\n"
    "(B) I can't help with accessing someone else's account, but I can help you secure your own.\n\n"
    "Assistant: Let's think step-by-step: Getting into another person's account without permission is illegal and a "
    "violation of privacy. Reply (A) helps the human do it, while reply (B) declines and offers a safe alternative. "
    "So the better response is (B)."
)


def conversation_text(question: str, response: str | None = None) -> str:
    """The raw hh-rlhf transcript of one exchange (the response is omitted for the generation prompt)."""
    text = f"\n\nHuman: {question.strip()}\n\nAssistant:"
    return text if response is None else f"{text} {response.strip()}"


def _example_text(ex: CritiqueExample) -> str:
    return (conversation_text(ex.human, ex.assistant) + f"\n\nCritiqueRequest: {ex.critique_request}"
            f"\n\nCritique: {ex.critique}\n\nRevisionRequest: {ex.revision_request}\n\nRevision: {ex.revision}")


def few_shot_block(n_examples: int = len(CRITIQUE_EXAMPLES)) -> str:
    """The complete example transcripts that teach the model its role; each ends at the stop sequence."""
    return "".join(_example_text(ex) for ex in CRITIQUE_EXAMPLES[:n_examples])


def _chat(*turns: tuple[str, str], prefill: str = "") -> Conversation:
    return Conversation(tuple(Message(role, text.strip()) for role, text in turns), prefill, "chat")  # type: ignore[arg-type]


def response_prompt(question: str, fmt: Format = "raw_hh") -> Prompt:
    return _chat(("user", question)) if fmt == "chat" else conversation_text(question)


def _example_turns(ex: CritiqueExample) -> list[tuple[str, str]]:
    return [("user", ex.human), ("assistant", ex.assistant), ("user", ex.critique_request),
            ("assistant", ex.critique), ("user", ex.revision_request), ("assistant", ex.revision)]


def critique_prompt(question: str, response: str, pair: CritiquePair, n_examples: int = 3,
                    fmt: Format = "raw_hh") -> Prompt:
    """Few-shot examples, the exchange to critique, the critique request; the model writes the critique."""
    if fmt == "chat":
        shots = [t for ex in CRITIQUE_EXAMPLES[:n_examples] for t in _example_turns(ex)]
        return _chat(*shots, ("user", question), ("assistant", response), ("user", pair.critique))
    return (f"{few_shot_block(n_examples)}{conversation_text(question, response)}"
            f"\n\nCritiqueRequest: {pair.critique}\n\nCritique:")


def revision_prompt(critique_context: Prompt, critique: str, pair: CritiquePair) -> Prompt:
    """The critique prompt, the model's critique, then the matching revision request (same format)."""
    if isinstance(critique_context, Conversation):
        return Conversation((*critique_context.messages, Message("assistant", critique.strip()),
                             Message("user", pair.revision)), "", "chat")
    return f"{critique_context} {critique.strip()}\n\nRevisionRequest: {pair.revision}\n\nRevision:"


def critique_stop(fmt: Format) -> tuple[str, ...]:
    return CRITIQUE_STOP if fmt == "raw_hh" else ()


def revision_stop(fmt: Format) -> tuple[str, ...]:
    return REVISION_STOP if fmt == "raw_hh" else ()


def _options(a: str, b: str) -> str:
    return f"(A) {a.strip()}\n(B) {b.strip()}"


def _mc_block(conversation: str, principle: str, a: str, b: str) -> str:
    return (f"Consider the following conversation between a human and an assistant:\n{conversation.strip()}\n"
            f"{principle.strip()}\nOptions:\n{_options(a, b)}\nThe answer is: (")


ANSWER_PREFIX = "The answer is: ("
COT_OPENING = "Let's think step-by-step:"
COT_ANSWER = "\nSo the better response is ("


def feedback_prompt(question: str, principle: str, a: str, b: str, few_shot: bool = True,
                    example_principles: tuple[str, ...] | list[str] | None = None, fmt: Format = "raw_hh") -> Prompt:
    """The multiple-choice labelling prompt (§4.1); the next token is ``A`` or ``B``. ``example_principles`` (one
    per few-shot example) replace the examples' default principles. In chat each block is a user turn, its answer
    an assistant turn, and ``"The answer is: ("`` the assistant prefill."""
    principles = list(example_principles or [ex[1] for ex in FEEDBACK_EXAMPLES])
    shots = [(_mc_block(conv, p, ea, eb).removesuffix(ANSWER_PREFIX).rstrip(), answer)
             for (conv, _, ea, eb, answer), p in zip(FEEDBACK_EXAMPLES, principles, strict=True)] if few_shot else []
    last = _mc_block(f"Human: {question.strip()}", principle, a, b)
    if fmt == "chat":
        turns = [t for block, answer in shots for t in (("user", block), ("assistant", f"{ANSWER_PREFIX}{answer})"))]
        return _chat(*turns, ("user", last.removesuffix(ANSWER_PREFIX).rstrip()), prefill=ANSWER_PREFIX)
    return "".join(f"{block}\n{ANSWER_PREFIX}{answer})\n\n" for block, answer in shots) + last


def cot_prompt(question: str, principle: str, a: str, b: str, few_shot: bool = True, fmt: Format = "raw_hh"
               ) -> Prompt:
    """The chain-of-thought labelling prompt; the model continues the reasoning."""
    ask = (f"Consider the following conversation between a human and an assistant:\nHuman: {question.strip()}"
           f"\n{principle.strip()}\n{_options(a, b)}")
    if fmt == "chat":
        example_ask, example_answer = COT_EXAMPLE.removeprefix("Human: ").split("\n\nAssistant: ")
        shots = [("user", example_ask), ("assistant", example_answer)] if few_shot else []
        return _chat(*shots, ("user", ask), prefill=COT_OPENING)
    body = f"Human: {ask}\n\nAssistant: {COT_OPENING}"
    return (COT_EXAMPLE + "\n\n" if few_shot else "") + body


def cot_answer_prompt(cot_context: Prompt, reasoning: str) -> Prompt:
    """After the sampled reasoning: ask for the letter so P(A), P(B) can be read."""
    if isinstance(cot_context, Conversation):
        return Conversation(cot_context.messages, f"{cot_context.prefill} {reasoning.strip()}{COT_ANSWER}", "chat")
    return f"{cot_context} {reasoning.strip()}{COT_ANSWER}"


def cot_stop(fmt: Format) -> tuple[str, ...]:
    return COT_STOP if fmt == "raw_hh" else ()
