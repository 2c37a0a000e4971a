"""fer_exp: config-driven facial-expression-recognition experiments tracked in MLflow."""

__version__ = "0.2.0"
