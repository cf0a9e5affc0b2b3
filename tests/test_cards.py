"""The extractive card writer on real abstracts: verbatim quotes only, never a bare number as an equation."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from corpus import candidate, records

from feedsvc.cards.extractive import (
    GAP,
    INTUITION_WORDS,
    MIN_CUT_WORDS,
    RESULT_WORDS,
    build_card,
    domain_label,
    headline_sentences,
    intuition_text,
    result_sentences,
    sentences,
    significance_sentence,
    talk_card,
    time_cost,
    trim_clauses,
    trim_words,
)
from feedsvc.cards.grounding import is_grounded, numbers_grounded
from feedsvc.cards.roles import shipped_model
from feedsvc.models import Quote, Scored


def corpus() -> list[dict]:
    return records()


def scored(r: dict, thread: str = "Agents") -> Scored:
    c = candidate(r)
    return Scored(candidate=c, score=0.2, thread=thread, matched=("tool delegation",))


@pytest.fixture(scope="module")
def cards() -> list:
    return [(r, build_card(scored(r))) for r in corpus()]


def test_every_quote_on_every_card_occurs_verbatim_in_its_abstract(cards) -> None:
    assert len(cards) == 200
    for r, card in cards:
        assert card.punch, f"{r['id']}: a card without a concrete punch"
        for q in card.punch:
            assert is_grounded(q.text, r["summary"]), (r["id"], q.text)
        # the problem and the idea: each piece verbatim ("…" between them, and at the end of a cut one)
        pieces = card.intuition.removesuffix(GAP.rstrip()).split(GAP)
        assert card.intuition == r["title"] or all(is_grounded(p, r["summary"]) for p in pieces), r["id"]
        assert not card.significance or is_grounded(card.significance, r["summary"])


def test_no_card_shows_a_bare_number_as_an_equation(cards) -> None:
    for r, card in cards:
        for q in card.punch:
            if q.is_math:
                assert re.search(r"[A-Za-z\\]", q.text), (r["id"], q.text)
                assert not re.fullmatch(r"\s*\\?[A-Za-z]\w*\s*=\s*[-+\d.,\s%]*", q.text), (r["id"], q.text)


def test_a_bound_in_the_abstract_becomes_the_punch() -> None:
    r = next(r for r in corpus() if r["id"] == "2606.00376")
    card = build_card(scored(r))
    maths = [q.text for q in card.punch if q.is_math]
    assert maths[0] == r"O(H \cdot \log(L/H) \cdot \sqrt{d_h})"
    assert r"r = 0.81" not in maths  # a correlation value is a number, not an equation
    numbers = [q.text for q in card.punch if not q.is_math]
    assert any("86-94% accuracy versus 24-42%" in n for n in numbers)
    assert card.time_cost.endswith("(51 pages)")


def test_time_cost_from_pages_else_from_length() -> None:
    assert (
        time_cost("20 pages, 3 figures", "x " * 200, "paper")
        == "~20min abstract+method skim, ~70min full read (20 pages)"
    )
    assert "length not stated" in time_cost("", "word " * 300, "paper")
    assert time_cost("", "word " * 6000, "paper").endswith("full read")
    assert time_cost("", "", "video", duration_s=4140) == "1h 9m"


def test_headline_sentences_carry_numbers_and_skip_years() -> None:
    text = (
        "We study X. In 2024 we found nothing. Our method improves accuracy by 12.5% on ImageNet. It is nice."
    )
    assert headline_sentences(text) == ["Our method improves accuracy by 12.5% on ImageNet."]


def test_sentence_splitting_keeps_abbreviations_and_decimals() -> None:
    assert sentences("We use e.g. SGD with lr 0.5. Then Smith et al. (2020) agree. Done.") == [
        "We use e.g. SGD with lr 0.5.",
        "Then Smith et al. (2020) agree.",
        "Done.",
    ]
    # real (arXiv 2605.21924, 2026-05-22): the listing lost the space after two sentences' full stops
    text = (
        "even though the teacher's predictions depend heavily on it.To make this difference observable, we "
        "introduce visual advantage (VA). VA is concentrated in a small minority of tokens. "
        "Named in the U.S.A. and on huggingface.co by the authors."
    )
    assert sentences(text) == [
        "even though the teacher's predictions depend heavily on it.",
        "To make this difference observable, we introduce visual advantage (VA).",
        "VA is concentrated in a small minority of tokens.",
        "Named in the U.S.A. and on huggingface.co by the authors.",
    ]


def test_domain_label_names_the_thread_and_the_fields() -> None:
    assert (
        domain_label(("cs.LG", "stat.ML", "cs.AI"), "RL theory")
        == "RL theory / Machine Learning / Machine Learning (Statistics)"
    )
    assert domain_label(("hep-th",), "") == "hep-th"


def test_grounding_catches_the_failures_of_seed_003() -> None:
    abstract = "We reach 93.1% accuracy with 12 layers."
    assert not is_grounded("12.25", abstract)  # a number the source never states
    assert is_grounded("93.1%  accuracy", abstract)  # whitespace does not matter
    assert numbers_grounded("accuracy of 93.1% with 12 layers", abstract)
    assert not numbers_grounded("accuracy of 95.0%", abstract)


def test_intuition_and_result_line_keep_to_their_word_limits(cards) -> None:
    for r, card in cards:
        assert len(card.intuition.split()) <= INTUITION_WORDS, r["id"]
        line = [q.text for q in card.punch if not q.is_math]
        assert len(" ".join(line).split()) <= RESULT_WORDS, r["id"]


def test_the_result_line_does_not_repeat_the_intuition(cards) -> None:
    for r, card in cards:
        if len(sentences(r["summary"])) >= 5:  # room for both fields without sharing a sentence
            for q in card.punch:
                assert q.is_math or " ".join(q.text.split()[:6]) not in card.intuition, r["id"]


def test_trim_words_keeps_whole_clauses_from_the_start() -> None:
    s = "We propose a method, which learns very fast, and it beats every baseline on all of the benchmarks."
    assert trim_words(s, 9) == "We propose a method, which learns very fast"
    assert trim_words(s, 40) == s
    assert trim_words("one two three four five six", 3) == "one two three"
    # real (arXiv 2605.22720): a cut at whole words does not end on a word that leads into the next
    s = (
        "AI models are already deployed in societies affected by armed conflict, and journalists, "
        "humanitarian workers, governments and ordinary citizens rely on them for information."
    )
    assert trim_words(s, 9) == "AI models are already deployed in societies affected"
    assert trim_words(s, 12) == "AI models are already deployed in societies affected by armed conflict"


# real sentences: from the 2026-06-26 announcement day of the arXiv corpus and from the roles dev set
CUT_INTO_LEAD_INS = {
    "These results indicate that, for identity-conditioned classification of legal outcomes, the choice of "
    "conditioning interface dominates scale: differentiable structured composition yields more accurate, "
    "more parameter-efficient models than prompt-based composition over a substantially larger backbone.": (
        "These results indicate that, for identity-conditioned classification of legal outcomes, the choice "
        "of conditioning interface dominates scale"
    ),
    "Analyzing the Pareto frontier, we find that the most well-known semantic universal, conservativity, "
    "emerges as an efficient system-wide abstraction.": "",
    "We evaluate ContextForge using a 15-turn conversational benchmark that tests multi-turn reasoning, "
    "back-references, and domain shifts across structured healthcare queries.": "",
    "Through object detection, instance segmentation, and dense pose estimation experiments, we illustrate "
    "how ReSim learns representations which significantly improve the localization and classification "
    "performance compared to a competitive MoCo-v2 baseline: +2:7 APbb75 VOC, +1:1 AP75 COCO, and +1:9 "
    "APmk Cityscapes.": (
        "Through object detection, instance segmentation, and dense pose estimation experiments, we "
        "illustrate how ReSim learns representations which significantly improve the localization and "
        "classification performance compared to a competitive MoCo-v2 baseline"
    ),
    "Our approach achieves state-of-the-art results in terms of Density (LSUN Bedroom: 1.51; LSUN Churches: "
    "1.12; FFHQ: 1.20) and Coverage (LSUN Bedroom: 0.83; LSUN Churches: 0.73; FFHQ: 0.80).": "",
}


@pytest.mark.parametrize("sentence", CUT_INTO_LEAD_INS)
def test_a_cut_never_ends_on_a_lead_in_a_list_item_or_inside_brackets(sentence: str) -> None:
    for cap in range(MIN_CUT_WORDS, len(sentence.split())):
        piece = trim_clauses(sentence, cap)
        assert piece in ("", *(v for v in CUT_INTO_LEAD_INS.values() if v)), (cap, piece)
        assert piece.count("(") == piece.count(")") and not piece.endswith(("that", "universal"))
    longest = CUT_INTO_LEAD_INS[sentence]
    assert trim_clauses(sentence, len(sentence.split()) - 1) == longest


def test_the_result_line_prefers_a_stated_outcome_to_a_set_up_sentence() -> None:
    # real: arXiv 2606.26105, from the 2026-06-26 announcement day of the shared corpus
    parts = sentences(
        "Large language models (LLMs) exhibit strong capabilities in short-context reasoning but degrade "
        "in performance over long conversational horizons due to context window limitations and "
        "inefficient token usage. We introduce ContextForge, a system for context recycling that "
        "maintains task-relevant information across turns by combining structured query generation, "
        "external memory retrieval, and controlled synthesis. The system enables efficient reuse of prior"
        " computation without relying on full context replay, reducing token overhead while preserving "
        "answer quality. We evaluate ContextForge using a 15-turn conversational benchmark that tests "
        "multi-turn reasoning, back-references, and domain shifts across structured healthcare queries. "
        "Compared to a baseline agent using identical underlying models, ContextForge demonstrates "
        "improved consistency and reduced token consumption, while maintaining comparable response "
        "accuracy. These results suggest that context recycling provides a practical approach for "
        "extending LLM capabilities in long-horizon tasks without requiring larger context windows or "
        "model retraining. Code and evaluation artifacts are available at "
        "https://github.com/Betanu701/ContextForge."
    )
    roles = shipped_model().score(parts)
    line = result_sentences(parts, roles, intuition_text(parts, roles))
    assert any(p.startswith("Compared to a baseline agent") for p in line)  # improved, reduced: an outcome
    assert not any(p.startswith("We evaluate ContextForge") for p in line)  # "a 15-turn benchmark": set-up


# real: arXiv 2606.13572 and 2606.12748, from the 2026-06-12 announcement day of the shared corpus
PROBLEM_AND_RELEASE = {
    "Existing English-centric MLLMs struggle": (
        "Multimodal Large Language Models (MLLMs) have shown promising reasoning capabilities in general "
        "domains, yet their performance remains limited in specialized settings such as healthcare, "
        "especially in multilingual and low-resource scenarios. This gap is critical in regions like "
        "rural India, where patients often express complex medical queries in native Indic languages and "
        "rely on multimodal inputs such as medical images. Existing English-centric MLLMs struggle to "
        "support such use cases, limiting equitable access to AI-driven healthcare assistance. To address"
        " this challenge, we introduce ArogyaBodha, a large-scale multilingual multimodal medical "
        "question-answer dataset constructed from eight heterogeneous sources, covering 31 body systems, "
        "six imaging modalities, and 21 clinical domains across English and seven major Indian languages."
        " We further propose ArogyaSutra, an actor-critic-based multi-agent framework that integrates "
        "tool grounding with dual-memory mechanisms for step-wise, reasoning-aware decision making, and "
        "uses stored actor-critic simulation trajectories for distillation. Experiments show that our "
        "dataset and framework improve multilingual medical reasoning accuracy across all Indic "
        "languages, with ablations validating the contribution of each component. The source code and "
        "dataset are available at: https://iitp-cse.github.io/ ArogyaSutra/"
    ),
    "All code and data are released": (
        'Why is the past of English "go" the apparently unrelated "went"? Such alternations are frequent '
        "in languages. They neither aid communication nor learnability, yet they can be persistent, "
        "surviving over centuries or millennia.   We present a multi-agent simulation of the emergence of"
        " morphological stem and inflection alternations. Alternate forms arise by phonological changes "
        'or, as with "go/went", from lexical alternatives associated with a subset of the population. '
        "When an agent 'hears' another agent use a novel form for a slot in the paradigm of a word (say, "
        "the past tense of go), they will with some probability adopt that form, possibly spreading its "
        "use to other slots in the paradigm that shared the same original form. Thus alternative forms "
        "can spread through the population and become entrenched as stem or inflectional marker "
        "alternants. Unlike many previous computational studies, our system allows for naturalistic "
        "lexical forms, realistic phonological rules, lexicons with hundreds or thousands of entries, and"
        " agent populations in the tens or hundreds. It supports several network topologies, diffusion "
        "patterns and agent adoption policies.   One issue with such simulations is evaluation: how "
        "realistic is the resulting morphology compared to those of real languages? We introduce the AI "
        "Historical Linguist, a novel Large Language Model-driven system that models a debate between two"
        " historical linguists. We use this to compare a set of real language morphologies, disguised "
        "morphologies, and experimentally evolved morphologies. The results suggest that among the "
        "factors that favor more plausible morphologies are scale-free social networks and random "
        "Bernoulli adoption of forms.   We also present three case studies modeling attested historical "
        "changes, allowing us to test what might have happened if history had been different.   All code "
        "and data are released."
    ),
}


@pytest.mark.parametrize("left_out", PROBLEM_AND_RELEASE)
def test_the_result_line_leaves_out_the_problem_and_the_release_note(left_out: str) -> None:
    parts = sentences(PROBLEM_AND_RELEASE[left_out])
    roles = shipped_model().score(parts)
    line = result_sentences(parts, roles, intuition_text(parts, roles))
    assert line and not any(p.startswith(left_out) for p in line)


def test_the_result_sentence_is_in_the_result_line_once() -> None:
    # real: arXiv 2606.12590 (2026-06-12); the intuition used to end with the result sentence's start
    parts = sentences(
        "Large Vision-Language Models (LVLMs) have achieved strong performance across medical imaging "
        "tasks, yet they remain prone to factual inconsistencies, poor visual grounding, and misalignment"
        " with clinically meaningful feedback. Existing post-training alignment approaches, including "
        "Direct Preference Optimization (DPO) and its variants, face three critical limitations in the "
        "medical domain: (1) sequence-level reward signals treat clinically critical tokens identically "
        "to generic filler text; (2) reliance on static supervised fine-tuning references as preferred "
        "responses introduces an off-policy distribution shift, steering optimization toward stylistic "
        "artifacts over clinical correctness; and (3) alignment objectives lack explicit visual grounding"
        " constraints, leaving models insensitive to subtle yet diagnostically decisive pathological "
        "features. Our method leverages a bidirectional token-wise KL regularizer alongside a visual-"
        "contrastive grounding objective that pairs clean and lesion-corrupted images to penalize "
        "responses generated without adequate visual evidence. Together, these components form a fine-"
        "grained, on-policy alignment framework that constructs preference pairs by minimally editing "
        "model-generated outputs, correcting only clinically erroneous spans while preserving the "
        "original linguistic style. Extensive experiments across medical imaging tasks and clinical text "
        "generation benchmarks validate the effectiveness of our approach."
    )
    roles = shipped_model().score(parts)
    experiments = next(k for k, p in enumerate(parts) if p.startswith("Extensive experiments"))
    # the intuition holds no result sentence: the result line has it
    intuition = intuition_text(parts, roles)
    assert "Extensive experiments" not in intuition
    assert any(p.startswith("Extensive experiments") for p in result_sentences(parts, roles, intuition))
    # and where a field ends a run-on piece with the start of a sentence, that sentence is not repeated
    cut = " ".join(parts[experiments].split()[:7])
    shown = f"{parts[0]} … {parts[experiments - 1]} {cut} …"
    for piece in result_sentences(parts, roles, shown):
        assert not piece.startswith(cut), piece


def test_a_cut_quote_is_marked_where_it_is_shown() -> None:
    assert Quote(text="We beat the baseline, on four benchmarks", where="abstract").cut
    assert not Quote(text="We beat the baseline (by 12%).", where="abstract").cut
    assert not Quote(text=r"x = y", where="abstract", is_math=True).cut


def test_significance_is_a_sentence_of_consequence_or_nothing() -> None:
    parts = ["We study X.", "We propose Y.", "Y is fast.", "This opens a new route to Z."]
    assert significance_sentence(parts, ["We propose Y."]) == "This opens a new route to Z."
    assert significance_sentence(parts[:3], []) == ""  # no leftover sentence stands in
    # nor one whose start the result line already quotes
    parts[3] = "This opens a new route to Z, which we explore on ten tasks."
    assert significance_sentence(parts, ["This opens a new route to Z"]) == ""


def test_the_role_model_finds_the_idea_and_the_result() -> None:
    parts = sentences(
        "Image retrieval is slow on large collections. Existing indexes fail on billions of images. "
        "In this paper, we propose a learned hashing scheme that compresses each image to 64 bits. "
        "Experiments show that our method outperforms the best index by a wide margin on three benchmarks."
    )
    roles = shipped_model().score(parts)
    assert max(range(4), key=lambda k: roles[k]["idea"]) == 2
    assert max(range(4), key=lambda k: roles[k]["result"]) == 3
    intuition = intuition_text(parts, roles)
    assert "we propose a learned hashing scheme" in intuition and len(intuition.split()) <= INTUITION_WORDS
    # the problem (the opening sentence) and the idea, which are not adjacent: two verbatim pieces
    assert intuition.startswith(parts[0] + GAP) and intuition.split(GAP)[1].startswith("we propose")
    assert result_sentences(parts, roles)[-1] == parts[3]


def test_the_intuition_runs_on_where_the_abstract_does() -> None:
    parts = sentences(
        "Robots drop fragile objects when their grip is too strong. We propose a soft gripper that senses "
        "slip with a camera in each finger. It holds eggs, glass and fruit without damage in 500 trials."
    )
    intuition = intuition_text(parts, shipped_model().score(parts))
    assert GAP not in intuition and is_grounded(intuition, " ".join(parts))
    assert intuition.startswith(parts[0]) and "We propose a soft gripper" in intuition


def test_a_cut_intuition_says_so_and_the_result_line_is_never_cut_mid_clause() -> None:
    # constructed: a short problem, a long idea sentence with no clause boundary, two result sentences
    idea = (
        "We propose a debiased judge that rewrites both answers into one neutral style before grading them "
        "so that the judge model sees the content of each answer and not the length or the style in which "
        "it was written"
    )
    parts = sentences(
        f"Language model judges prefer long answers. {idea}. Experiments show that the debiased judge "
        "agrees with human graders 12% more often than the plain judge, on four benchmarks. The rewriting "
        "step costs one extra model call per answer and it works with any judge model that follows "
        "instructions well enough to rewrite an answer without changing what it says."
    )
    roles = shipped_model().score(parts)
    intuition = intuition_text(parts, roles, max_words=30)
    assert intuition.endswith(" …") and len(intuition.split()) <= 30
    assert all(is_grounded(p, " ".join(parts)) for p in intuition.removesuffix(" …").split(GAP))
    for cap in (12, 20, 30, 40):
        for piece in result_sentences(parts, roles, max_words=cap):
            sentence = next(p for p in parts if p.startswith(piece))
            cut_well = sentence[len(piece) : len(piece) + 1] in tuple(",;:")
            assert piece == sentence or (cut_well and len(piece.split()) >= MIN_CUT_WORDS), (cap, piece)


def test_why_it_matches_is_a_sentence_and_the_numbers_are_evidence() -> None:
    r = corpus()[0]
    reasons = (
        "blend of lexical 0.41, semantic 0.63 (weights lexical 0.40, semantic 0.60)",
        "quality: explicit math",
        "closest voted paper: *Spectral Networks on Graphs*, which you liked (similarity 0.71)",
    )
    s = Scored(
        candidate=candidate(r),
        score=0.512,
        thread="graph-ml",
        matched=("spectral filters", "graph convolution"),
        nearest_seed="Convolutional Neural Networks on Graphs",
        nearest_vote=("Spectral Networks on Graphs", "up"),
        reasons=reasons,
    )
    card = build_card(s)
    assert card.why == (
        "Matches your *graph-ml* thread: it shares spectral filters and graph convolution with the thread, "
        "and its closest paper in the thread's library is *Convolutional Neural Networks on Graphs*. "
        "Of the papers you voted on, the closest is *Spectral Networks on Graphs*, which you liked."
    )
    assert not re.search(r"\d", card.why) and "score" not in card.why
    assert card.evidence == reasons and card.score == 0.512


def test_a_pick_without_a_thread_gets_no_thread_phrase() -> None:
    c = candidate(corpus()[0])
    assert build_card(Scored(candidate=c, score=0.0, thread="")).why == ""
    alone = build_card(Scored(candidate=c, score=0.0, thread="", matched=("tool delegation",)))
    assert alone.why == "It shares tool delegation with your interests."


def test_a_talks_why_says_it_is_a_talk_on_the_paper_and_why_the_paper_matches() -> None:
    r = corpus()[0]
    video = replace(candidate(r), key="youtube:abcdefghijk", kind="video", title="The authors' talk")
    s = Scored(  # the paper's ranking with its talk as the candidate, as the talk check makes it
        candidate=video,
        score=0.512,
        thread="graph-ml",
        matched=("spectral filters",),
        nearest_seed="Convolutional Neural Networks on Graphs",
        nearest_vote=("Spectral Networks on Graphs", "up"),
        reasons=("a talk about a paper pick (arXiv id in description)",),
    )
    card = talk_card(r["title"], s)
    assert card.talk_for == r["title"] and card.kind == "video"
    assert card.why == (
        f"A talk on *{r['title']}*, which matches your *graph-ml* thread: it shares spectral filters with "
        "the thread, and its closest paper in the thread's library is "
        "*Convolutional Neural Networks on Graphs*. Of the papers you voted on, the closest is "
        "*Spectral Networks on Graphs*, which you liked."
    )
    assert card.evidence == s.reasons
    alone = talk_card("A paper", replace(s, thread="", nearest_seed=None, nearest_vote=None))
    assert alone.why == "A talk on *A paper*: it shares spectral filters with your interests."
    bare = talk_card("A paper", replace(s, thread="", matched=(), nearest_seed=None, nearest_vote=None))
    assert bare.why == "A talk on *A paper*."
