# ltigate's LMS API client: a staff service user and its client-credentials
# OAuth2 client. ltigate reads each launched course's block tree with it, to
# open XBlock handlers only under the launched block, and (with
# LTIGATE_ENABLE_DEEP_LINKING) lists courses and blocks in the content picker.
./manage.py lms manage_user {{ LTIGATE_OAUTH2_CLIENT_ID }} {{ LTIGATE_OAUTH2_CLIENT_ID }}@ltigate.invalid --staff --unusable-password
./manage.py lms create_dot_application \
    --grant-type client-credentials \
    --client-id "{{ LTIGATE_OAUTH2_CLIENT_ID }}" \
    --client-secret "{{ LTIGATE_OAUTH2_SECRET }}" \
    --update \
    ltigate {{ LTIGATE_OAUTH2_CLIENT_ID }}
