"""Stand-in for edx-platform ``common/djangoapps/util/views.py``."""

import ast
import json
import logging
import math
import operator
from functools import wraps

from django.http import Http404, HttpResponse
from opaque_keys import InvalidKeyError
from opaque_keys.edx.keys import CourseKey, UsageKey

log = logging.getLogger(__name__)


def ensure_valid_course_key(view_func):
    """Http404 when the ``course_id`` (or ``course_key_string``) *keyword* argument does not parse."""

    @wraps(view_func)
    def inner(request, *args, **kwargs):
        course_key = kwargs.get("course_key_string") or kwargs.get("course_id")
        if course_key is not None:
            try:
                CourseKey.from_string(course_key)
            except InvalidKeyError:
                raise Http404  # pylint: disable=raise-missing-from
        return view_func(request, *args, **kwargs)

    return inner


def ensure_valid_usage_key(view_func):
    """Http404 when the ``usage_key_string`` *keyword* argument does not parse
    (a key passed positionally is not checked)."""

    @wraps(view_func)
    def inner(request, *args, **kwargs):
        usage_key = kwargs.get("usage_key_string")
        if usage_key is not None:
            try:
                UsageKey.from_string(usage_key)
            except InvalidKeyError:
                raise Http404  # pylint: disable=raise-missing-from
        return view_func(request, *args, **kwargs)

    return inner


_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS = {"sqrt": math.sqrt, "sin": math.sin, "cos": math.cos, "tan": math.tan, "log": math.log10,
              "ln": math.log, "exp": math.exp, "abs": abs}
_CONSTANTS = {"pi": math.pi, "e": math.e}


def _evaluate(node):
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS \
            and len(node.args) == 1 and not node.keywords:
        return _FUNCTIONS[node.func.id](_evaluate(node.args[0]))
    raise ValueError("unsupported expression")


def calculate(request):
    """``/calculate?equation=...`` (the footer calculator): ``{"result": "<value>"}``, or
    ``{"result": "Invalid syntax"}``. A missing ``equation`` is a server error, as in the LMS
    (``request.GET['equation']``). The body is JSON text with Django's default content type.
    The LMS evaluates with the ``calc`` package; this one knows arithmetic, ``^``, a few
    functions, ``pi`` and ``e``."""
    equation = request.GET["equation"]
    try:
        result = _evaluate(ast.parse(equation.replace("^", "**"), mode="eval"))
    except Exception:  # pylint: disable=broad-except
        log.info("calculator: invalid syntax %r", equation)
        return HttpResponse(json.dumps({"result": "Invalid syntax"}))
    return HttpResponse(json.dumps({"result": str(result)}))
