"""`python -m services.sleep`: run one instance of the sleep service."""

from services.kit import boot
from services.sleep.app import assemble
from services.sleep.config import SleepSettings

if __name__ == "__main__":
    boot.run(SleepSettings.load, assemble)
