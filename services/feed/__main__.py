"""`python -m services.feed`: run one instance of the feed service."""

from services.feed.app import assemble
from services.feed.config import FeedSettings
from services.kit import boot

if __name__ == "__main__":
    boot.run(FeedSettings.load, assemble)
