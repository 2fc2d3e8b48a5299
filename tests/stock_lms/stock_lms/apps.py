from django.apps import AppConfig


class StockLmsConfig(AppConfig):
    name = "stock_lms"
    label = "stock_lms"
    verbose_name = "stock-behaviour LMS (tests)"
