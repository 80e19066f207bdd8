"""`python -m services.leaderboard`: run one instance of the leaderboard service."""

from services.kit import boot
from services.leaderboard.app import assemble
from services.leaderboard.config import LeaderboardSettings

if __name__ == "__main__":
    boot.run(LeaderboardSettings.load, assemble)
