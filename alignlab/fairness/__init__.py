"""Bias and moral self-correction (Ganguli et al. 2023, arXiv 2302.07459): BBQ, Winogender and the admissions
discrimination task, each under the interventions Q, Q+IF and Q+IF+CoT (plus Q+Match Stats for Winogender)."""
