"""`python -m services.analytics`: run one instance of the analytics service."""

from services.analytics.app import assemble
from services.analytics.config import AnalyticsSettings
from services.kit import boot

if __name__ == "__main__":
    boot.run(AnalyticsSettings.load, assemble)
