"""Red teaming (Ganguli et al. 2022; LM-generated attacks after Perez et al. 2022): attacks, target types,
harmlessness scoring (min over assistant turns), attack success rates and the attack landscape."""

from alignlab.redteam.attacks import Attack, continue_attacks, few_shot_examples, generate_attacks
from alignlab.redteam.pipeline import RedteamConfig, Resources, run_attack
from alignlab.redteam.scoring import (
    Calibration,
    JudgeScorer,
    PMScorer,
    Scorer,
    calibrate,
    min_harmlessness,
    success_rate,
    turn_scores,
)
from alignlab.redteam.summary import build_summary
from alignlab.redteam.targets import TARGET_TYPES, Target, parse_target, respond
from alignlab.redteam.transcripts import PreferencePair, Transcript, load_pairs, load_transcripts, parse_transcript

__all__ = ["TARGET_TYPES", "Attack", "Calibration", "JudgeScorer", "PMScorer", "PreferencePair", "RedteamConfig",
           "Resources", "Scorer", "Target", "Transcript", "build_summary", "calibrate", "continue_attacks",
           "few_shot_examples", "generate_attacks", "load_pairs", "load_transcripts", "min_harmlessness",
           "parse_target", "parse_transcript", "respond", "run_attack", "success_rate", "turn_scores"]
