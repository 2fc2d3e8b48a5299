{% if LTIGATE_ENABLE_DEEP_LINKING -%}
# ltigate deep linking: a staff service user and its client-credentials OAuth2
# client, which ltigate uses to list courses and blocks in the content picker.
./manage.py lms manage_user {{ LTIGATE_OAUTH2_CLIENT_ID }} {{ LTIGATE_OAUTH2_CLIENT_ID }}@ltigate.invalid --staff --unusable-password
./manage.py lms create_dot_application \
    --grant-type client-credentials \
    --client-id "{{ LTIGATE_OAUTH2_CLIENT_ID }}" \
    --client-secret "{{ LTIGATE_OAUTH2_SECRET }}" \
    --update \
    ltigate {{ LTIGATE_OAUTH2_CLIENT_ID }}
{%- else -%}
echo "ltigate: deep linking is off (LTIGATE_ENABLE_DEEP_LINKING); no LMS OAuth2 client to create"
{%- endif %}
