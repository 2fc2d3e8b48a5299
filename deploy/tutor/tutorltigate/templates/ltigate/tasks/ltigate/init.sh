# Generate the tool key once, into the persistent volume (/var/lib/ltigate),
# then validate the rendered config and print what to give each platform.
key=/var/lib/ltigate/keys/{{ LTIGATE_KEY_ID }}.pem
if [ -f "$key" ]; then
    echo "ltigate: keeping the existing tool key $key"
else
    ltigate keygen --out /var/lib/ltigate/keys --kid "{{ LTIGATE_KEY_ID }}"
fi
ltigate check --config /etc/ltigate/gateway.toml
