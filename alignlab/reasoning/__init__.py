"""Reasoning faithfulness: CoT intervention tests (Lanham et al. 2023) and question decomposition
(Radhakrishnan et al. 2023). See docs/reasoning.md."""

from alignlab.reasoning.decomposition import DecomposeConfig
from alignlab.reasoning.faithfulness import FaithfulnessConfig
from alignlab.reasoning.questions import Question, load_questions
from alignlab.reasoning.runner import run_decomposition, run_faithfulness

__all__ = ["DecomposeConfig", "FaithfulnessConfig", "Question", "load_questions", "run_decomposition",
           "run_faithfulness"]
