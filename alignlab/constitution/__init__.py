"""Constitutional AI (Bai et al. 2022; Kundu et al. 2023): constitutions, critique/revision, AI feedback,
preference models and RL through TRL."""
