"""The symbol scanner actor: ranks and filters symbols by liquidity, volatility and price.

A shell over :class:`~actors.market.ranking.Scanner` (the windows and the ranking, pure):
each ``Bars`` message is one step of it, passed on to the evaluator with the candidates
after that step.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from actors.market.contract import Bars, Candidates, ScannedBars
from actors.market.ranking import RankingRules, Scanner
from supervisor import SupervisedActor
from supervisor.peers import Peer

__all__ = [
    "ScannerActor",
]


class ScannerActor(SupervisedActor):
    """Owns a :class:`Scanner` and sends each step's bars on with its candidates."""

    accepts: ClassVar[tuple[type, ...]] = (
        Bars,)

    class Settings(RankingRules):
        evaluator: Annotated[str, Peer(accepts=(ScannedBars,))] = "evaluator"

    def __init__(self, settings: ScannerActor.Settings | None = None) -> None:
        super().__init__()
        self.settings = settings or ScannerActor.Settings()
        self.scanner = Scanner(self.settings)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Bars):
            candidates = self.scanner.push(message.bars)
            self.ctx.try_tell(self.settings.evaluator,
                              ScannedBars(message.bars, candidates, message.catch_up))
            return None
        if message == "candidates":
            return Candidates(self.scanner.ranked, 0.0)
        return super().on_receive(message)
