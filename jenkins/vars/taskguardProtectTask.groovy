// taskguardProtectTask turns an ECS task definition into a protected one and
// archives it (the seeds' tw_fargate.json): through the console API
// (consoleUrl + credentialsId, the seeds' curl step) or offline with
// `taskguard task protect`. See taskguardProtectTask.txt.

import groovy.transform.Field

@Field static final List<String> PROTECT_PARAMETERS = [
    'taskDefinition', 'protectedTaskOutput', 'consoleUrl', 'credentialsId', 'consoleAddr',
    'consoleCa', 'consoleInsecure', 'defenderImage', 'extractEntrypoint',
    'agentTokenSecret', 'agentTokenCredentialsId', 'archive', 'taskguard',
]

// The console call: credentials reach curl on its standard input (a config
// file), never on a command line or in the trace; every other value comes in
// through the environment, so nothing is interpolated into the script.
@Field static final String PROTECT_SCRIPT = '''set +x
mkdir -p "$(dirname "$TG_OUT")"
resp="$TG_OUT.response"
set -- -sS -X POST -H 'Content-Type: application/json' --data-binary "@$TG_TASK" -o "$resp" -w '%{http_code}'
if [ "$TG_CONSOLE_INSECURE" = true ]; then set -- "$@" -k; fi
if [ -n "$TG_CA_CERT" ]; then set -- "$@" --cacert "$TG_CA_CERT"; fi
curlrc() { printf '%s:%s\\n' "$TG_USER" "$TG_PASS" | sed 's/[\\\\"]/\\\\&/g; s/^/user = "/; s/$/"/'; }
code=$(curlrc | curl -K - "$@" "$TG_URL") || {
  echo "taskguardProtectTask: could not reach the console at $TG_CONSOLE_URL (curl exit $?)" >"$TG_ERR"
  rm -f "$resp"; exit 2
}
if [ "$code" != 200 ]; then
  body=$(head -c 500 "$resp" | tr '\\n' ' ' | tr -s ' ')
  echo "taskguardProtectTask: the console answered HTTP $code: $body" >"$TG_ERR"
  rm -f "$resp"; exit 1
fi
if command -v jq >/dev/null; then jq . "$resp" >"$TG_OUT" && rm -f "$resp"; else mv "$resp" "$TG_OUT"; fi
echo "protected task definition written to $TG_OUT"
'''

// The offline transform: the same result without a console.
@Field static final String OFFLINE_SCRIPT = '''rc=0
mkdir -p "$(dirname "$TG_OUT")"
"$TG_TASKGUARD" task protect "$TG_TASK" -o "$TG_OUT" "$@" 2>"$TG_ERR" || rc=$?
cat "$TG_ERR" >&2
exit $rc
'''

Map call(Map args = [:]) {
    for (String key : args.keySet()) {
        if (!(key in PROTECT_PARAMETERS)) {
            error("taskguardProtectTask: unknown parameter '${key}' (see taskguardProtectTask.txt for the list)")
        }
    }
    Map o = [
        protectedTaskOutput: 'tg_fargate.json', archive: true, consoleInsecure: false, taskguard: 'taskguard',
    ] + args
    if (!o.taskDefinition) {
        error('taskguardProtectTask: taskDefinition is required (the ECS task definition JSON to protect)')
    }
    if (!fileExists(o.taskDefinition as String)) {
        error("taskguardProtectTask: task definition ${o.taskDefinition} does not exist")
    }
    String errFile = '.taskguard-protect.err'
    List<String> envVars = [
        "TG_TASK=${o.taskDefinition}", "TG_OUT=${o.protectedTaskOutput}", "TG_ERR=${errFile}",
    ]
    int status
    if (o.consoleUrl) {
        if (!o.credentialsId) {
            error('taskguardProtectTask: consoleUrl needs credentialsId (a username/password credential ' +
                  'of a console user with the defender-manager role)')
        }
        String base = (o.consoleUrl as String).replaceAll('/+$', '')
        String addr = (o.consoleAddr ?: consoleHost(base)) as String
        String url = base + '/api/v1/defenders/fargate.json?consoleaddr=' + enc(addr)
        if (o.defenderImage) {
            url += '&defenderImage=' + enc(o.defenderImage as String)
        }
        if (o.extractEntrypoint) {
            url += '&extractEntrypoint=true'
        }
        if (o.agentTokenSecret) {
            url += '&agentTokenSecret=' + enc(o.agentTokenSecret as String)
        }
        envVars += [
            "TG_URL=${url}", "TG_CONSOLE_URL=${base}", "TG_CA_CERT=${o.consoleCa ?: ''}",
            "TG_CONSOLE_INSECURE=${o.consoleInsecure ? 'true' : 'false'}",
        ]
        withEnv(envVars) {
            withCredentials([usernamePassword(credentialsId: o.credentialsId, usernameVariable: 'TG_USER',
                                              passwordVariable: 'TG_PASS')]) {
                status = sh(script: PROTECT_SCRIPT, returnStatus: true, label: 'taskguard: protect the task definition')
            }
        }
    } else {
        List<String> flags = []
        if (o.consoleAddr) {
            flags += ['--console-addr', o.consoleAddr as String]
        }
        if (o.agentTokenSecret) {
            flags += ['--agent-token-secret', o.agentTokenSecret as String]
        }
        if (o.defenderImage) {
            flags += ['--defender-image', o.defenderImage as String]
        }
        if (o.extractEntrypoint) {
            flags << '--extract-entrypoint'
        }
        String script = 'set -- ' + quoteAll(flags) + '\n' + OFFLINE_SCRIPT
        envVars << "TG_TASKGUARD=${o.taskguard}"
        withEnv(envVars) {
            if (o.agentTokenCredentialsId) {
                withCredentials([string(credentialsId: o.agentTokenCredentialsId, variable: 'TASKGUARD_AGENT_TOKEN')]) {
                    status = sh(script: script, returnStatus: true, label: 'taskguard task protect')
                }
            } else {
                status = sh(script: script, returnStatus: true, label: 'taskguard task protect')
            }
        }
    }
    if (status != 0) {
        String reason = fileExists(errFile) ? (readFile(errFile) as String).trim() : ''
        error(reason ?: "taskguardProtectTask: protection failed (exit ${status})")
    }
    if (o.archive) {
        archiveArtifacts(artifacts: o.protectedTaskOutput, fingerprint: true)
    }
    return [protectedTaskDefinition: o.protectedTaskOutput]
}

private String consoleHost(String url) {
    String rest = url.replaceFirst('^[a-zA-Z][a-zA-Z0-9+.-]*://', '')
    int slash = rest.indexOf('/')
    return slash < 0 ? rest : rest.substring(0, slash)
}

private String enc(String s) {
    return URLEncoder.encode(s, 'UTF-8')
}

private String quoteAll(List<String> words) {
    List<String> quoted = []
    for (String w : words) {
        quoted << "'" + w.replace("'", "'\"'\"'") + "'"
    }
    return quoted.join(' ')
}
