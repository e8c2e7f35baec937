"""Scorers, registered by the name a suite's `scorer: {name: ...}` uses; imported only when chosen."""

from llmbench.scoring.base import STATUSES, Score, ScoredOutput, Scorer, scorers

scorers.add_lazy("exact", "llmbench.scoring.exact:ExactScorer")
scorers.add_lazy("code", "llmbench.scoring.code:CodeScorer")
scorers.add_lazy("math", "llmbench.scoring.math:MathScorer")
scorers.add_lazy("json", "llmbench.scoring.json:JsonScorer")
scorers.add_lazy("instructions", "llmbench.scoring.instructions:InstructionScorer")
scorers.add_lazy("multilingual", "llmbench.scoring.language:LanguageScorer")
scorers.add_lazy("choice", "llmbench.scoring.choice:ChoiceScorer")
scorers.add_lazy("needle", "llmbench.scoring.longctx:NeedleScorer")
scorers.add_lazy("tools", "llmbench.scoring.tools:ToolCallScorer")
scorers.add_entry_points("llmbench.scorers")

__all__ = ["STATUSES", "Score", "ScoredOutput", "Scorer", "scorers"]
