"""The key facts of template.yaml, which cfn-lint cannot check (it does not look inside a
SAM `Events: SQS` block, nor at what our queues and policies must be).

Run with the venv of scripts/test: `$CWSYNC_VENV/bin/python tests/template/check_template.py`.
Exits non-zero, naming every broken fact.
"""

import pathlib
import json
import sys
import tomllib

from cfnlint.decode import decode

ROOT = pathlib.Path(__file__).resolve().parents[2]
failures = []


def fact(ok, what):
    if not ok:
        failures.append(what)


template, matches = decode(str(ROOT / "template.yaml"))
if matches:
    sys.exit(f"template.yaml does not parse: {matches}")
resources = template["Resources"]
params = template["Parameters"]
mappings = template["Mappings"]
functions = {k: v for k, v in resources.items() if v["Type"] == "AWS::Serverless::Function"}
queues = {k: v for k, v in resources.items() if v["Type"] == "AWS::SQS::Queue"}
alarms = [v["Properties"] for v in resources.values() if v["Type"] == "AWS::CloudWatch::Alarm"]
work_queues = {k: v for k, v in queues.items() if not k.endswith("Dlq")}
dead_letter_queues = {k: v for k, v in queues.items() if k.endswith("Dlq")}

# Queues: three work queues and three dead-letter queues, all FIFO and encrypted.
fact(len(work_queues) == 3 and len(dead_letter_queues) == 3, "three work queues and three DLQs")
for name, queue in queues.items():
    props = queue["Properties"]
    fact(props.get("FifoQueue") is True, f"{name} is FIFO")
    fact(props.get("SqsManagedSseEnabled") is True, f"{name} has SQS-managed encryption")
    fact(str(props.get("QueueName", {}).get("Fn::Sub", "")).endswith(".fifo"), f"{name}'s name ends in .fifo")

# The redrive: after the first try and three retries, by a parameter defaulting to 4.
fact(params["MaxReceiveCount"]["Default"] == 4, "MaxReceiveCount defaults to 4")
for name, queue in work_queues.items():
    redrive = queue["Properties"]["RedrivePolicy"]
    fact(redrive["maxReceiveCount"] == {"Ref": "MaxReceiveCount"}, f"{name} redrives after MaxReceiveCount")
    fact(redrive["deadLetterTargetArn"] == {"Fn::GetAtt": [name.replace("Queue", "Dlq"), "Arn"]},
         f"{name} redrives to its own DLQ")
    fact(queue["Properties"]["VisibilityTimeout"]
         == {"Fn::FindInMap": ["ConsumerTimeouts", {"Ref": "ConsumerTimeout"}, "VisibilityTimeout"]},
         f"{name}'s visibility timeout follows the consumer timeout")

# Visibility timeout at least six times the consumer's timeout; the timeout outlasts a
# whole rate-limit window (300 s); the duration alarm is at 90 %.
for timeout in params["ConsumerTimeout"]["AllowedValues"]:
    row = mappings["ConsumerTimeouts"][timeout]
    fact(row["VisibilityTimeout"] >= 6 * int(timeout), f"visibility >= 6 x {timeout}")
    fact(int(timeout) > 300, f"consumer timeout {timeout} outlasts a 300 s rate-limit window")
    fact(row["DurationAlarmMs"] == int(timeout) * 900, f"duration alarm at 90 % of {timeout}")

# Functions: arm64, provided.al2023, built by cargo-lambda, default 128 MB.
glob = template["Globals"]["Function"]
fact(glob["Runtime"] == "provided.al2023", "runtime provided.al2023")
fact(glob["Architectures"] == ["arm64"], "arm64")
fact(params["FunctionMemory"]["Default"] == 128, "128 MB by default")
expected_binaries = {"api", "rooms-sync", "messages-sync", "summary-draft", "dlq", "scheduler"}
binaries = set()
for name, function in functions.items():
    meta = function.get("Metadata", {})
    fact(meta.get("BuildMethod") == "rust-cargolambda", f"{name} is built by cargo-lambda")
    binary = meta.get("BuildProperties", {}).get("Binary")
    binaries.add(binary)
    fact((ROOT / function["Properties"]["CodeUri"] / "Cargo.toml").exists(), f"{name}'s CodeUri is a crate")
    fact(function["Properties"].get("LoggingConfig", {}).get("LogFormat") == "JSON", f"{name} logs JSON")
    # X-Ray tracing on every function (its own setting, else the global one).
    tracing = function["Properties"].get("Tracing", glob.get("Tracing"))
    fact(tracing == "Active", f"{name} has X-Ray tracing Active, not {tracing}")
fact(binaries == expected_binaries, f"functions are {expected_binaries}, not {binaries}")

# Every SQS event source: partial batch failures, a batch size and a concurrency cap.
sqs_events = 0
for name, function in functions.items():
    for event_name, event in function["Properties"].get("Events", {}).items():
        if event["Type"] != "SQS":
            continue
        sqs_events += 1
        props = event["Properties"]
        where = f"{name}.{event_name}"
        fact(props.get("FunctionResponseTypes") == ["ReportBatchItemFailures"], f"{where} reports batch item failures")
        fact("BatchSize" in props, f"{where} sets a batch size")
        fact("MaximumConcurrency" in props.get("ScalingConfig", {}), f"{where} caps concurrency")
fact(sqs_events == 6, f"six SQS event sources (three queues, three DLQs), found {sqs_events}")
for name in ("RoomsSyncFunction", "MessagesSyncFunction", "SummaryDraftFunction"):
    cap = functions[name]["Properties"]["Events"]["Queue"]["Properties"]["ScalingConfig"]["MaximumConcurrency"]
    fact(cap == {"Ref": "ConsumerMaximumConcurrency"}, f"{name}'s concurrency cap is a parameter")

# Least privilege: no wildcard resource or action in any function's policy (but the
# objects under rooms/ of the files bucket, which an object's ARN cannot name otherwise);
# the API may only send to the three work queues.
FILES_OBJECTS = {"Fn::Sub": "${FilesBucket.Arn}/rooms/*"}
for name, function in functions.items():
    for policy in function["Properties"].get("Policies", []):
        for statement in policy.get("Statement", []):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resource = statement["Resource"]
            resources_list = resource if isinstance(resource, list) else [resource]
            fact(all("*" not in a for a in actions), f"{name}: no wildcard action in {actions}")
            fact(all(r == FILES_OBJECTS or (r != "*" and "*" not in str(r)) for r in resources_list),
                 f"{name}: no wildcard resource")

# Files: the messages sync may only put and the API only get, under rooms/; nobody else
# touches the bucket. The bucket is encrypted, private, TLS-only, with a lifecycle.
def s3_actions(name):
    return sorted(a for p in functions[name]["Properties"].get("Policies", []) for s in p.get("Statement", [])
                  for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]]) if a.startswith("s3:"))
fact(s3_actions("MessagesSyncFunction") == ["s3:PutObject"], "the messages sync may only put files")
fact(s3_actions("ApiFunction") == ["s3:GetObject"], "the API may only get files")
for name in functions:
    if name not in ("MessagesSyncFunction", "ApiFunction"):
        fact(s3_actions(name) == [], f"{name} does not touch the files bucket")
bucket = resources["FilesBucket"]["Properties"]
fact(bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"]
     in ("AES256", "aws:kms"), "the files bucket is encrypted")
fact(all(bucket["PublicAccessBlockConfiguration"][k] is True for k in
         ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")),
     "the files bucket blocks public access")
fact(any("AbortIncompleteMultipartUpload" in r for r in bucket["LifecycleConfiguration"]["Rules"]),
     "the files bucket aborts incomplete uploads")
fact(resources["FilesBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]["Condition"]
     == {"Bool": {"aws:SecureTransport": "false"}}, "the files bucket refuses plain HTTP")
api_sqs = [s for p in functions["ApiFunction"]["Properties"]["Policies"] for s in p["Statement"]
           if any(a.startswith("sqs:") for a in s["Action"])]
fact(len(api_sqs) == 1 and set(api_sqs[0]["Action"]) == {"sqs:SendMessage", "sqs:GetQueueAttributes"},
     "the API may only send to (and check) the queues")
fact({r["Fn::GetAtt"][0] for r in api_sqs[0]["Resource"]} == set(work_queues),
     "the API sends only to the three work queues")

# The HTTP API's JWT authorizer takes issuer and audience from parameters.
jwt = resources["HttpApi"]["Properties"]["Auth"]["Authorizers"]["JwtAuthorizer"]["JwtConfiguration"]
fact(jwt == {"issuer": {"Ref": "JwtIssuer"}, "audience": {"Ref": "JwtAudience"}}, "JWT issuer and audience")

# The console's page, files and sign-in settings are public, and Chatwork's webhook
# deliveries (their HMAC signature is their authentication); everything else under /api
# goes through the JWT authorizer.
api_events = functions["ApiFunction"]["Properties"]["Events"]
public = {e["Properties"]["Path"] for e in api_events.values()
          if e["Properties"].get("Auth", {}).get("Authorizer") == "NONE"}
fact(public == {"/api/health", "/api/openapi.json", "/", "/console/{proxy+}", "/api/console/config",
                "/webhooks/chatwork", "/oauth/chatwork"},
     "only health, the OpenAPI document, the console's files, settings and OAuth return page and the webhook route skip the authorizer")

# Schedules: the room check every minute by default, the fixed messages sync only as its
# fallback, the rooms sync, the sweeper, the retention cleanup.
scheduler = functions["SchedulerFunction"]["Properties"]
events = scheduler["Events"]
schedules = {e["Properties"]["Input"] for e in events.values()}
for task in ("room-check", "messages-sync", "sweep", "retention", "rooms-sync"):
    fact(f'{{"task": "{task}"}}' in schedules, f"a schedule runs {task}")
check = events["RoomCheck"]["Properties"]
fact(params["RoomCheckEveryMinutes"]["Default"] == 1, "the room check runs every minute by default")
fact(check["Schedule"] == {"Fn::If": ["RoomCheckEveryMinute", "rate(1 minute)",
                                      {"Fn::Sub": "rate(${RoomCheckEveryMinutes} minutes)"}]},
     "the room check's rate is the parameter (rate(1 minute) when it is 1)")
fact(template["Conditions"]["RoomCheckEveryMinute"] == {"Fn::Equals": [{"Ref": "RoomCheckEveryMinutes"}, "1"]},
     "RoomCheckEveryMinute tests the parameter")
fact(check["State"] == {"Fn::If": ["RoomCheckOn", "ENABLED", "DISABLED"]}, "the room check follows RoomCheckEnabled")
fact(events["MessagesSync"]["Properties"]["State"] == {"Fn::If": ["RoomCheckOn", "DISABLED", "ENABLED"]},
     "the fixed messages sync runs only while the room check is off")
env = scheduler["Environment"]["Variables"]
fact(env.get("ROOM_CHECK_EVERY_MINUTES") == {"Ref": "RoomCheckEveryMinutes"}
     and env.get("ROOM_CHECK_RESERVE_PERCENT") == {"Ref": "RoomCheckReservePercent"},
     "the scheduler knows the check's cadence and reserve")
fact(env.get("CHATWORK_API_TOKEN_SECRET_ARN") == {"Ref": "ChatworkTokenSecretArn"},
     "the scheduler reads the bootstrap Chatwork token (the check's room lists)")
messages_env = functions["MessagesSyncFunction"]["Properties"]["Environment"]["Variables"]
fact(messages_env.get("MESSAGES_SYNC_QUEUE_URL") == {"Ref": "MessagesSyncQueue"},
     "the messages consumer can send a room check's fetches to its own queue")
messages_sends = [s for p in functions["MessagesSyncFunction"]["Properties"]["Policies"] for s in p["Statement"]
                  if "sqs:SendMessage" in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])]
fact(len(messages_sends) == 1 and messages_sends[0]["Resource"] == {"Fn::GetAtt": ["MessagesSyncQueue", "Arn"]},
     "the messages consumer may send only to its own queue")
scheduler_secrets = [r for p in scheduler["Policies"] for s in p["Statement"]
                     if "secretsmanager:GetSecretValue" in s["Action"]
                     for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])]
fact({"Fn::If": ["HasBootstrapToken", {"Ref": "ChatworkTokenSecretArn"}, {"Ref": "AWS::NoValue"}]} in scheduler_secrets,
     "the scheduler may read the Chatwork token secret when there is one")

# Connections: one KMS key with rotation; only the functions that call Chatwork may use it
# (to seal and open tokens), each knowing its id and the OAuth client; the OAuth return
# route is public (the console completes it with the admin's token); an alarm per function
# when a connection needs a person.
keys = {k: v for k, v in resources.items() if v["Type"] == "AWS::KMS::Key"}
fact(list(keys) == ["TokenKey"] and keys["TokenKey"]["Properties"].get("EnableKeyRotation") is True,
     "one KMS key for the tokens, rotated")
calls_chatwork = {"ApiFunction", "RoomsSyncFunction", "MessagesSyncFunction", "SchedulerFunction"}
for name, function in functions.items():
    props = function["Properties"]
    kms = [s for p in props.get("Policies", []) for s in p.get("Statement", [])
           if any(str(a).startswith("kms:") for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]]))]
    if name in calls_chatwork:
        fact(len(kms) == 1 and sorted(kms[0]["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
             and kms[0]["Resource"] == {"Fn::GetAtt": ["TokenKey", "Arn"]},
             f"{name} may seal and open tokens with TokenKey, nothing else of KMS")
        variables = props["Environment"]["Variables"]
        fact(variables.get("TOKEN_KMS_KEY_ID") == {"Fn::GetAtt": ["TokenKey", "Arn"]}, f"{name} knows the token key")
        fact(variables.get("CHATWORK_OAUTH_CLIENT_ID") == {"Ref": "ChatworkOAuthClientId"}, f"{name} knows the OAuth client")
    else:
        fact(not kms, f"{name} may not use KMS (it never calls Chatwork)")
api_events = functions["ApiFunction"]["Properties"]["Events"]
oauth_return = [e["Properties"] for e in api_events.values() if e["Properties"].get("Path") == "/oauth/chatwork"]
fact(len(oauth_return) == 1 and oauth_return[0]["Auth"] == {"Authorizer": "NONE"},
     "Chatwork's OAuth redirect reaches the console's page without a JWT")
for function in ("rooms-sync", "messages-sync", "scheduler"):
    found = [a for a in alarms if a["MetricName"] == "chatwork_connections_reauth_required"
             and a["Dimensions"][0]["Value"] == function]
    fact(len(found) == 1 and found[0]["Threshold"] == 1, f"an alarm when a connection of {function} needs reconnecting")

# Alarms: DLQ depth >= 1, oldest message over 5 minutes, errors, throttles, duration, API 5xx,
# Chatwork unavailable.
for name in dead_letter_queues:
    found = [a for a in alarms if a["MetricName"] == "ApproximateNumberOfMessagesVisible"
             and a["Dimensions"][0]["Value"] == {"Fn::GetAtt": [name, "QueueName"]}]
    fact(len(found) == 1 and found[0]["Threshold"] == 1
         and found[0]["ComparisonOperator"] == "GreaterThanOrEqualToThreshold", f"DLQ depth alarm on {name}")
for name in work_queues:
    found = [a for a in alarms if a["MetricName"] == "ApproximateAgeOfOldestMessage"
             and a["Dimensions"][0]["Value"] == {"Fn::GetAtt": [name, "QueueName"]}]
    fact(len(found) == 1 and found[0]["Threshold"] == 300, f"oldest-message alarm on {name}")
for name in functions:
    for metric in ("Errors", "Throttles", "Duration"):
        found = [a for a in alarms if a["MetricName"] == metric and a["Dimensions"][0]["Value"] == {"Ref": name}]
        fact(len(found) == 1, f"{metric} alarm on {name}")
fact(any(a["MetricName"] == "5xx" and a["Namespace"] == "AWS/ApiGateway" for a in alarms), "API 5xx alarm")
# Chatwork down: the outage breaker's fail-fast calls, for each sync consumer.
for function in ("messages-sync", "rooms-sync"):
    found = [a for a in alarms if a["MetricName"] == "chatwork_unavailable" and a["Namespace"] == "cwsync"
             and a["Dimensions"] == [{"Name": "function", "Value": function}]]
    fact(len(found) == 1 and found[0]["Threshold"] == 1, f"Chatwork-unavailable alarm on {function}")
fact(any(a["MetricName"] == "sync_gaps_detected" and a["Namespace"] == "cwsync" and a["Threshold"] == 1
         and a["Dimensions"] == [{"Name": "function", "Value": "messages-sync"}] for a in alarms),
     "an alarm when a sync detects a gap")
# Chatwork webhooks: the route without the JWT authorizer and with its own throttle, the
# secret of the tokens readable by the API function alone, an alarm on refused signatures.
webhook_routes = [
    (name, e["Properties"]) for name, v in resources.items() if v["Type"] == "AWS::Serverless::Function"
    for e in v["Properties"].get("Events", {}).values()
    if e["Type"] == "HttpApi" and e["Properties"].get("Path") == "/webhooks/chatwork"
]
fact(len(webhook_routes) == 1 and webhook_routes[0][0] == "ApiFunction"
     and webhook_routes[0][1]["Method"] == "POST"
     and webhook_routes[0][1].get("Auth") == {"Authorizer": "NONE"}
     and webhook_routes[0][1].get("RouteSettings", {}).get("ThrottlingRateLimit", 0) > 0,
     "POST /webhooks/chatwork: the API function, no JWT authorizer, its own throttle")
readers = [name for name, v in resources.items() if v["Type"] == "AWS::Serverless::Function"
           and "ChatworkWebhookTokensSecret" in json.dumps(v["Properties"].get("Policies", []))]
fact(resources.get("ChatworkWebhookTokensSecret", {}).get("Type") == "AWS::SecretsManager::Secret"
     and readers == ["ApiFunction"], "the webhook tokens secret, read by the API function only")
fact(any(a["MetricName"] == "webhook_rejected" and a["Namespace"] == "cwsync"
         and a["Dimensions"] == [{"Name": "function", "Value": "api"}] for a in alarms),
     "an alarm on refused webhook signatures")
# Scheduled tasks: a failed run, a task overdue (three intervals without a run; no report
# at all is the scheduler not running), a run longer than its interval; and the tick that
# runs requested runs and reports that health every minute.
for metric, stat, missing, what in (
    ("schedule_runs_failed", "Sum", "notBreaching", "a scheduled task failed"),
    ("schedule_tasks_overdue", "Maximum", "breaching", "a scheduled task is overdue"),
    ("schedule_runs_overlong", "Maximum", "notBreaching", "a run longer than its interval"),
):
    found = [a for a in alarms if a.get("MetricName") == metric and a["Namespace"] == "cwsync"
             and a["Dimensions"] == [{"Name": "function", "Value": "scheduler"}]]
    fact(len(found) == 1 and found[0]["Statistic"] == stat and found[0]["Threshold"] == 1
         and found[0]["TreatMissingData"] == missing, f"an alarm when {what}")
fact(any(e["Properties"]["Input"] == '{"tick": true}' and e["Properties"]["Schedule"] == "rate(1 minute)"
         for e in events.values()), "a minutely tick runs requested runs and measures the tasks")
api_env = functions["ApiFunction"]["Properties"]["Environment"]["Variables"]
for variable in ("ROOM_CHECK_ENABLED", "ROOM_CHECK_EVERY_MINUTES", "MESSAGES_SYNC_EVERY_MINUTES",
                 "ROOMS_SYNC_EVERY_HOURS"):
    fact(variable in env and env[variable] == api_env.get(variable),
         f"the API and the scheduler see the same {variable}")
fact(all(a.get("AlarmActions") == [{"Ref": "AlarmTopic"}] for a in alarms), "every alarm notifies the topic")
fact(resources["AlarmSubscription"]["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}, "alarm e-mail parameter")
fact("Dashboard" in resources, "a dashboard")

# Log retention per environment.
fact(mappings["Environments"]["staging"]["LogRetentionDays"] == 7, "staging keeps logs 7 days")
fact(mappings["Environments"]["production"]["LogRetentionDays"] == 30, "production keeps logs 30 days")
log_groups = [v for v in resources.values() if v["Type"] == "AWS::Logs::LogGroup"]
fact(len(log_groups) == len(functions) + 1, "a log group per function and one for API access logs")
# The access log names the API Gateway request and the API function's request, whose log
# lines carry the trace id.
access_format = json.loads(resources["HttpApi"]["Properties"]["AccessLogSettings"]["Format"])
fact(access_format.get("requestId") == "$context.requestId"
     and access_format.get("lambdaRequestId") == "$context.integration.requestId",
     "the API access log carries the request id and the function's request id")

# The release profile sets what `cargo lambda build --release` would otherwise fill in,
# panic = "abort" among it: a deployed consumer must survive a handler's panic.
release = tomllib.loads((ROOT / "Cargo.toml").read_text())["profile"]["release"]
fact(release.get("panic") == "unwind" and "lto" in release and "codegen-units" in release
     and "strip" in release, "the release profile leaves cargo lambda nothing to choose (panic unwinds)")

# The deployed functions are position-dependent executables (cold start: README,
# "Security notes"), and the benchmark measures them built the same way.
cargo_config = tomllib.loads((ROOT / ".cargo" / "config.toml").read_text())
lambda_flags = cargo_config.get("target", {}).get("aarch64-unknown-linux-gnu", {}).get("rustflags", [])
fact(lambda_flags == ["-C", "link-arg=-no-pie"],
     "the Lambda target is linked position-dependent, -no-pie (.cargo/config.toml)")
fact('link-arg=-no-pie' in (ROOT / "scripts" / "bench").read_text(),
     "scripts/bench links the way the Lambda target is linked")

# samconfig.toml: both environments.
samconfig = tomllib.loads((ROOT / "samconfig.toml").read_text())
for env in ("staging", "production"):
    deploy = samconfig.get(env, {}).get("deploy", {}).get("parameters", {})
    fact(f"Environment={env}" in deploy.get("parameter_overrides", []), f"samconfig has {env}")

if failures:
    print("template.yaml: broken facts:\n  - " + "\n  - ".join(failures))
    sys.exit(1)
print(f"template.yaml: all facts hold ({len(functions)} functions, {len(queues)} queues, {len(alarms)} alarms)")
