"""`python -m services.user`: run one instance of the user service."""

from services.kit import boot
from services.user.app import assemble
from services.user.config import UserSettings

if __name__ == "__main__":
    boot.run(UserSettings.load, assemble)
