"""SLM-as-judge scorers (DESIGN.md section 7, "Judges").

- `judges`: AlpaGasus (0-5 accuracy), UltraFeedback (1-5 helpfulness), FineWeb-Edu (additive 0-5
  educational value of web text), DEITA complexity and quality (1-6); each in `expected` mode (the
  expected value over the score tokens' probabilities, one forward pass) or `generate` mode
  (decode and parse), as thresher Scorers;
- `ifd`: Instruction-Following Difficulty with a small LM;
- `templates` + `prompts/*.yaml`: versioned prompts (package data), unhardened and hardened;
- `cache`: the judgment cache; `injection`: prompt-injection measurement; `calibrate`: agreement
  with reference labels; `degrade`: real-versus-degraded reference sets; `cli`: `thresher judge`.
"""

from thresher.judges.base import Judgment, LLMJudge
from thresher.judges.ifd import IFDScorer
from thresher.judges.judges import (
    AlpaGasusJudge,
    DeitaComplexityJudge,
    DeitaQualityJudge,
    EduJudge,
    UltraFeedbackJudge,
    build_judge,
)

__all__ = [
    "AlpaGasusJudge",
    "DeitaComplexityJudge",
    "DeitaQualityJudge",
    "EduJudge",
    "IFDScorer",
    "Judgment",
    "LLMJudge",
    "UltraFeedbackJudge",
    "build_judge",
]
