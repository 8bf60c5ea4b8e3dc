"""The console's screens: sign-in, then the main screen with a tab per area."""

from tui.screens.main import MainScreen
from tui.screens.sign_in import SignInScreen

__all__ = ["MainScreen", "SignInScreen"]
