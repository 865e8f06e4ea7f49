APP_ID = "io.github.mhgui.MHGui"
APP_NAME = "mhgui"
__version__ = "0.1.0"
