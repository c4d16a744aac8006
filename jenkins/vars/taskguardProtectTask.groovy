// taskguardProtectTask turns an ECS task definition into a protected one and
// archives it (the seeds' tw_fargate.json): through the console API
// (consoleUrl + credentialsId, the seeds' curl step) or offline with
// `taskguard task protect`. See taskguardProtectTask.txt.
//
// CPS: only strings, lists and maps live across steps; the helpers that take
// text apart are @NonCPS and call no step. Each run's error file is its own
// mktemp file (parallel stages share a workspace), removed at once.

import groovy.transform.Field

@Field static final List<String> PROTECT_PARAMETERS = [
    'taskDefinition', 'protectedTaskOutput', 'consoleUrl', 'credentialsId', 'consoleAddr',
    'consoleCa', 'consoleInsecure', 'defenderImage', 'extractEntrypoint',
    'agentTokenSecret', 'agentTokenCredentialsId', 'archive', 'taskguard',
    'include', 'exclude', 'skipImage', 'failClosed', 'defenderPlatforms', 'healthCheck', 'wafPort',
]

// Lists take a Groovy list of strings or one string of comma- or
// newline-separated items (a job parameter), as the Action's inputs do.
// Each maps to the console's query parameter and the CLI's flag.
@Field static final Map<String, String> PROTECT_LISTS = [
    include: '--include', exclude: '--exclude', skipImage: '--skip-image', defenderPlatforms: '--defender-platforms',
]
@Field static final List<String> PROTECT_LIST_KEYS = ['include', 'exclude', 'skipImage', 'defenderPlatforms']

// The console call: credentials reach curl on its standard input (a config
// file), never on a command line or in the trace; every other value comes in
// through the environment, so nothing is interpolated into the script.
@Field static final String PROTECT_SCRIPT = '''
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
@Field static final String OFFLINE_SCRIPT = '''
mkdir -p "$(dirname "$TG_OUT")"
"$TG_TASKGUARD" task protect "$TG_TASK" -o "$TG_OUT" "$@" 2>"$TG_ERR" || { rc=$?; cat "$TG_ERR" >&2; exit $rc; }
cat "$TG_ERR" >&2
'''

// wrap runs a script in a subshell whose output goes to the log; the
// step's stdout is the exit status, then the error file (the reason).
@Field static final String WRAP_HEAD = '''set +x
TMP=$TMPDIR
[ -n "$TMP" ] || TMP=/tmp
TG_ERR=$(mktemp "$TMP/taskguard-protect.XXXXXX")
rc=0
(
'''
@Field static final String WRAP_TAIL = '''
) >&2 || rc=$?
echo "$rc"
cat "$TG_ERR"
rm -f "$TG_ERR"
'''

@Field static final List<String> PROTECT_BOOLEANS = [
    'consoleInsecure', 'extractEntrypoint', 'archive', 'failClosed', 'healthCheck',
]

Map call(Map args = [:]) {
    for (String key : args.keySet()) {
        if (!(key in PROTECT_PARAMETERS)) {
            error("taskguardProtectTask: unknown parameter '${key}' (see taskguardProtectTask.txt for the list)")
        }
    }
    // A parameter given as null (an unset env.X) takes its default.
    Map o = withDefaults([
        protectedTaskOutput: 'tg_fargate.json', archive: true, consoleInsecure: false, taskguard: 'taskguard',
    ], args)
    for (String key : PROTECT_BOOLEANS) {
        String bad = badBoolean(o[key])
        if (bad != null) {
            error("taskguardProtectTask: parameter '${key}' must be true or false " +
                  "(a boolean, or the string 'true' or 'false'), not ${bad}")
        }
        o[key] = o[key] == null ? null : o[key].toString() == 'true'
    }
    for (String key : PROTECT_LIST_KEYS) {
        String bad = badList(o[key])
        if (bad != null) {
            error("taskguardProtectTask: parameter '${key}' must be a list of strings or one string of comma- or " +
                  "newline-separated items, not ${bad}")
        }
        o[key] = listItems(o[key])
    }
    String badPort = badPorts(o.wafPort)
    if (badPort != null) {
        error("taskguardProtectTask: parameter 'wafPort' must be ports between 1 and 65535 (a number, a list of " +
              "numbers or one string of comma-separated numbers), not ${badPort}")
    }
    o.wafPort = portItems(o.wafPort)
    if (o.agentTokenSecret && o.agentTokenCredentialsId) {
        error('taskguardProtectTask: give agentTokenSecret (an ARN, recommended) or agentTokenCredentialsId, not both')
    }
    if (!o.taskDefinition) {
        error('taskguardProtectTask: taskDefinition is required (the ECS task definition JSON to protect)')
    }
    if (!fileExists(o.taskDefinition as String)) {
        error("taskguardProtectTask: task definition ${o.taskDefinition} does not exist")
    }
    List<String> envVars = [
        "TG_TASK=${o.taskDefinition}", "TG_OUT=${o.protectedTaskOutput}",
    ]
    String out
    if (o.consoleUrl) {
        if (!o.credentialsId) {
            error('taskguardProtectTask: consoleUrl needs credentialsId (a username/password credential ' +
                  'of a console user with the defender-manager role)')
        }
        List<String> offlineOnly = (o.healthCheck ? ['healthCheck'] : []) + (o.wafPort ? ['wafPort'] : [])
        if (offlineOnly) {
            error("taskguardProtectTask: ${offlineOnly.join(' and ')}: only a task protected offline " +
                  '(without consoleUrl) takes this; the console maps the external ports of its own WAF rules ' +
                  'and gives the defender no health check')
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
        url += listQuery(o, PROTECT_LIST_KEYS)
        if (o.failClosed) {
            url += '&failClosed=true'
        }
        envVars += [
            "TG_URL=${url}", "TG_CONSOLE_URL=${base}", "TG_CA_CERT=${o.consoleCa ?: ''}",
            "TG_CONSOLE_INSECURE=${o.consoleInsecure ? 'true' : 'false'}",
        ]
        withEnv(envVars) {
            withCredentials([usernamePassword(credentialsId: o.credentialsId, usernameVariable: 'TG_USER',
                                              passwordVariable: 'TG_PASS')]) {
                out = sh(script: WRAP_HEAD + PROTECT_SCRIPT + WRAP_TAIL, returnStdout: true,
                         label: 'taskguard: protect the task definition')
            }
        }
    } else {
        List<String> flags = []
        if (o.consoleAddr) {
            flags += ['--console-addr', o.consoleAddr as String]
        }
        // Offline, the console's certificate goes into the task for the
        // defender to trust (TASKGUARD_CONSOLE_CA_PEM).
        if (o.consoleCa) {
            flags += ['--console-ca', o.consoleCa as String]
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
        flags += listFlags(o, PROTECT_LISTS)
        if (o.failClosed) {
            flags << '--fail-closed'
        }
        for (String port : o.wafPort as List<String>) {
            flags += ['--waf-port', port]
        }
        if (o.healthCheck) {
            flags << '--health-check'
        }
        String script = WRAP_HEAD + 'set -- ' + quoteAll(flags) + '\n' + OFFLINE_SCRIPT + WRAP_TAIL
        envVars << "TG_TASKGUARD=${o.taskguard}"
        withEnv(envVars) {
            if (o.agentTokenCredentialsId) {
                withCredentials([string(credentialsId: o.agentTokenCredentialsId, variable: 'TASKGUARD_AGENT_TOKEN')]) {
                    out = sh(script: script, returnStdout: true, label: 'taskguard task protect')
                }
            } else {
                out = sh(script: script, returnStdout: true, label: 'taskguard task protect')
            }
        }
    }
    Map run = parseRun(out)
    if (run.status != 0) {
        error((run.reason ?: "taskguardProtectTask: protection failed (exit ${run.status})") as String)
    }
    // With a secret ARN the task must hold the credential as an ECS secret
    // only: a plain token in the archived file would leak it to every reader
    // of the build's artifacts.
    if (o.agentTokenSecret && plainAgentToken(readFile(o.protectedTaskOutput as String) as String)) {
        error("taskguardProtectTask: ${o.protectedTaskOutput} carries a plain TASKGUARD_AGENT_TOKEN although " +
              'agentTokenSecret was given; it was not archived')
    }
    if (o.archive) {
        archiveArtifacts(artifacts: o.protectedTaskOutput, fingerprint: true)
    }
    return [protectedTaskDefinition: o.protectedTaskOutput]
}

// badBoolean returns null for an acceptable boolean parameter (unset, a
// Boolean, 'true' or 'false'), else the value quoted for the error message.
@NonCPS
private static String badBoolean(Object value) {
    if (value == null || value == true || value == false) {
        return null
    }
    String s = value
    return s in ['true', 'false'] ? null : "'" + s + "'"
}

// withDefaults returns args over defaults, a null in args leaving the default.
@NonCPS
private static Map withDefaults(Map defaults, Map args) {
    Map o = [:] + defaults
    args.each { k, v ->
        if (v != null || !o.containsKey(k)) {
            o[k] = v
        }
    }
    return o
}

// badList returns null for an acceptable list parameter (unset, a string,
// a list of strings), else the value described for the error message.
@NonCPS
private static String badList(Object value) {
    if (value == null || CharSequence.isInstance(value)) {
        return null
    }
    if (!List.isInstance(value)) {
        return "${value} (${value.getClass().simpleName})"
    }
    List<String> bad = (value as List).findAll { !CharSequence.isInstance(it) }
        .collect { it == null ? 'null' : it.getClass().simpleName }
    return bad ? 'a list holding ' + bad.join(', ') : null
}

// listItems returns the items of a list parameter badList accepted:
// trimmed, empty ones left out.
@NonCPS
private static List<String> listItems(Object value) {
    List parts = []
    if (CharSequence.isInstance(value)) {
        parts = value.toString().split('[,\\n]') as List
    } else if (value != null) {
        parts = value as List
    }
    return parts.collect { it.toString().trim() }.findAll { it } as List<String>
}

// listQuery is the console's query parameters for the list options, one
// per item.
@NonCPS
private static String listQuery(Map o, List<String> keys) {
    String q = ''
    for (String key : keys) {
        for (String item : o[key] as List<String>) {
            q += '&' + key + '=' + enc(item)
        }
    }
    return q
}

// listFlags is taskguard's flags for the list options, one per item.
@NonCPS
private static List<String> listFlags(Map o, Map<String, String> flags) {
    List<String> out = []
    for (Map.Entry<String, String> e : flags) {
        for (String item : o[e.key] as List<String>) {
            out << e.value
            out << item
        }
    }
    return out
}

// badPorts returns null for an acceptable wafPort (unset, a port number, a
// string of comma- or newline-separated port numbers, or a list of those),
// else the offending item quoted for the error message.
@NonCPS
private static String badPorts(Object value) {
    if (value == null) {
        return null
    }
    List items = List.isInstance(value) ? value as List : [value]
    for (Object item : items) {
        if (!Number.isInstance(item) && !CharSequence.isInstance(item)) {
            return item == null ? 'a list holding null' : "${item} (${item.getClass().simpleName})"
        }
        for (String part : item.toString().split('[,\\n]')) {
            String p = part.trim()
            if (p && !(p ==~ /\d{1,5}/ && (p as int) >= 1 && (p as int) <= 65535)) {
                return "'" + p + "'"
            }
        }
    }
    return null
}

// portItems returns the ports of a wafPort badPorts accepted, as decimal
// strings without leading zeros.
@NonCPS
private static List<String> portItems(Object value) {
    List items = value == null ? [] : (List.isInstance(value) ? value as List : [value])
    List<String> ports = []
    for (Object item : items) {
        for (String part : item.toString().split('[,\\n]')) {
            if (part.trim()) {
                ports << (part.trim() as int).toString()
            }
        }
    }
    return ports
}

// parseRun reads the wrapped script's stdout: the exit status, then the reason.
@NonCPS
private static Map parseRun(String out) {
    List<String> lines = (out ?: '').readLines()
    String first = lines ? lines[0].trim() : ''
    if (!(first ==~ /\d+/)) {
        return [status: 2, reason: "taskguardProtectTask: the step printed no exit status (${first})"]
    }
    return [status: first as int, reason: lines.drop(1).join('\n').trim()]
}

// plainAgentToken reports whether a task definition's containers carry the
// agent credential as a plain environment value.
@NonCPS
private static boolean plainAgentToken(String taskJSON) {
    Map doc = new groovy.json.JsonSlurperClassic().parseText(taskJSON) as Map
    Map task = (doc.taskDefinition ?: doc) as Map
    for (Map c : (task.containerDefinitions ?: []) as List<Map>) {
        for (Map e : (c.environment ?: []) as List<Map>) {
            if (e.name == 'TASKGUARD_AGENT_TOKEN') {
                return true
            }
        }
    }
    return false
}

@NonCPS
private static String consoleHost(String url) {
    String rest = url.replaceFirst('^[a-zA-Z][a-zA-Z0-9+.-]*://', '')
    int slash = rest.indexOf('/')
    return slash < 0 ? rest : rest.substring(0, slash)
}

@NonCPS
private static String enc(String s) {
    return URLEncoder.encode(s, 'UTF-8')
}

@NonCPS
private static String quoteAll(List<String> words) {
    List<String> quoted = []
    for (String w : words) {
        quoted << "'" + w.replace("'", "'\"'\"'") + "'"
    }
    return quoted.join(' ')
}
