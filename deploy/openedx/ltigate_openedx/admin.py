"""Django admin: ltigate's learners and the enrollments ltigate made.

Both are read-only. Deleting an ``LtigateEnrollment`` here (its delete
button, or the "delete selected" action) unenrolls the learner through the
platform seam first, like ``ltigate_enrollments remove``. Deleting an
``LtigateUser`` unlinks the account from its gateway username: the gateway
can no longer log it in (the seed plugin's learners are linked again on
their next launch, from the seed's table).
"""

from django.contrib import admin, messages

from . import enrollment
from .models import LtigateEnrollment, LtigateUser


@admin.register(LtigateUser)
class LtigateUserAdmin(admin.ModelAdmin):
    list_display = ("username", "user", "created")
    search_fields = ("username", "user__username", "user__email")
    readonly_fields = ("user", "username", "created")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(LtigateEnrollment)
class LtigateEnrollmentAdmin(admin.ModelAdmin):
    list_display = ("course_key", "gateway_username", "user", "mode", "created")
    list_filter = ("mode",)
    search_fields = ("course_key", "user__username", "user__ltigate_account__username")
    readonly_fields = ("user", "course_key", "mode", "created")
    list_select_related = ("user", "user__ltigate_account")

    @admin.display(description="gateway username")
    def gateway_username(self, obj):
        return enrollment.gateway_username(obj.user)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def _remove(self, request, records):
        for ok, line in enrollment.remove(records):
            self.message_user(request, line, messages.SUCCESS if ok else messages.ERROR)

    def delete_model(self, request, obj):
        self._remove(request, [obj])

    def delete_queryset(self, request, queryset):
        self._remove(request, list(queryset.select_related("user", "user__ltigate_account")))
