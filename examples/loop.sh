# The loop: add photos, predict, tell the model what it missed, train, predict again.
# Run from the repository root with the server up (scripts/serve) and KEY set to its API key.
API=${API:-http://127.0.0.1:8080/v2}
auth=(-H "Authorization: Key $KEY" -H "Content-Type: application/json")
body() { printf '{"inputs": [{"data": {"image": {"base64": "%s"}}}]}' "$(base64 -w0 "$1")" > body.json; }

# 1. Add the example photos as inputs: each is classified on the way in, so it is searchable at once.
for f in examples/images/*.jpg; do
  printf '{"inputs": [{"id": "%s", "data": {"image": {"base64": "%s"}}}]}' \
    "$(basename "$f" .jpg)" "$(base64 -w0 "$f")" > body.json
  curl -s "${auth[@]}" -d @body.json "$API/inputs" | jq -r '"added \(.inputs[0].id)"'
done
curl -s "${auth[@]}" "$API/searches" -d '{"query": {"ands": [{"output": {"data": {"concepts": [{"name": "cat"}]}}}]}}' \
  | jq -c '{search_id: .id, cats_found: [.hits[].input.id]}'

# 2. Predict on a photo it has not seen: the top concepts, and no "chelsea" (the cat's name) yet.
body examples/new-cat.jpg
curl -s "${auth[@]}" -d @body.json "$API/models/general-v1.3/outputs" \
  | jq -c '{top: [.outputs[0].data.concepts[:3][] | {name, value}],
            chelsea: [.outputs[0].data.concepts[] | select(.id == "chelsea") | .value]}'

# 3. Predict on each photo, take the output id, and say whether it shows Chelsea (feedback).
for f in examples/images/*.jpg; do
  body "$f"
  output_id=$(curl -s "${auth[@]}" -d @body.json "$API/models/general-v1.3/outputs" | jq -r '.outputs[0].id')
  case "$f" in */cat-*) shown=true ;; *) shown=false ;; esac
  printf '{"input": {"data": {"concepts": [{"id": "chelsea", "value": %s}]},
           "feedback_info": {"event_type": "annotation", "output_id": "%s", "end_user_id": "me"}}}' \
    "$shown" "$output_id" > feedback.json
  curl -s "${auth[@]}" -d @feedback.json "$API/models/general-v1.3/feedback" \
    | jq -r --arg f "$f" '"\($f): feedback \(.status.description)"'
done

# 4. Train a new version now (the server also does it by itself after enough feedback) and wait
#    while it is queued (21103) or training (21101).
version_id=$(curl -s "${auth[@]}" -d '{}' "$API/models/general-v1.3/versions" | jq -r '.model.model_version.id')
while version=$(curl -s "${auth[@]}" "$API/models/general-v1.3/versions/$version_id"); \
      echo "$version" | jq -e '.model_version.status.code | . == 21103 or . == 21101' > /dev/null; do sleep 1; done
echo "$version" | jq -c '.model_version | {id, status: .status.code, decision: .visionloop.decision}'
# "chelsea" is new, so it goes live on its own cross-validated evidence (10 photos of each kind are
# the least it takes); activating by hand promotes a refused version, or rolls back to an older one.
curl -s "${auth[@]}" -X POST "$API/models/general-v1.3/versions/$version_id/activate" | jq -r '.status.description'

# 5. Predict again on the unseen photo: the model now knows Chelsea.
body examples/new-cat.jpg
curl -s "${auth[@]}" -d @body.json "$API/models/general-v1.3/outputs" \
  | jq -c '{version: .outputs[0].model.model_version.id,
            chelsea: [.outputs[0].data.concepts[] | select(.id == "chelsea") | .value]}'
