"""Stand-in for edx-platform ``lms/djangoapps/courseware/model_data.py`` ``get_score``/``set_score``."""

from django.db import IntegrityError, transaction

from .models import StudentModule


def set_score(user_id, usage_key, score, max_score):
    """Stores a raw score in the learner's StudentModule; returns its ``modified`` time."""
    kwargs = {"student_id": user_id, "module_state_key": usage_key, "course_id": usage_key.context_key}
    try:
        with transaction.atomic():
            module, created = StudentModule.objects.get_or_create(
                defaults={"grade": score, "max_grade": max_score, "module_type": usage_key.block_type}, **kwargs
            )
    except IntegrityError:
        module, created = StudentModule.objects.get(**kwargs), False
    if not created:
        module.grade = score
        module.max_grade = max_score
        module.save()
    return module.modified


def get_score(user_id, usage_key):
    return StudentModule.objects.filter(
        student_id=user_id, module_state_key=usage_key, course_id=usage_key.context_key
    ).first()
