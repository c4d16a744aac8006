// taskguardProtectTask turns an ECS task definition into a protected one and
// archives it (the seeds' tw_fargate.json): through the console API
// (consoleUrl + credentialsId, the seeds' curl step) or offline with
// `taskguard task protect`. See taskguardProtectTask.txt.
//
// CPS: only strings, lists and maps live across steps; the helpers that take
// text apart are @NonCPS and call no step. Each run's error file is its own
// mktemp file (parallel stages share a workspace), removed at once.

import groovy.transform.Field
import io.taskguard.jenkins.ConsoleCall
import io.taskguard.jenkins.StepOptions

@Field static final List<String> PROTECT_PARAMETERS = [
    'taskDefinition', 'protectedTaskOutput', 'consoleUrl', 'credentialsId', 'consoleAddr',
    'consoleCa', 'consoleInsecure', 'defenderImage', 'extractEntrypoint',
    'agentTokenSecret', 'agentTokenCredentialsId', 'archive', 'taskguard',
    'include', 'exclude', 'skipImage', 'failClosed', 'defenderPlatforms', 'healthCheck', 'wafPort',
    'timeout',
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
''' + ConsoleCall.curl('taskguardProtectTask') + '''if [ "$code" != 200 ]; then
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
    Map parsed = StepOptions.parse('taskguardProtectTask', args, [
        parameters: PROTECT_PARAMETERS, booleans: PROTECT_BOOLEANS, lists: PROTECT_LIST_KEYS, ports: ['wafPort'],
        durations: ['timeout'],
        defaults: [
            protectedTaskOutput: 'tg_fargate.json', archive: true, consoleInsecure: false, taskguard: 'taskguard',
            timeout: '10m',
        ],
    ])
    if (parsed.error) {
        error(parsed.error as String)
    }
    Map o = parsed.options as Map
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
        // curl gives up after timeout (default 10m, as taskguard's
        // --timeout): a console that stops answering fails the stage
        // instead of hanging it.
        envVars += [
            "TG_URL=${url}", "TG_CONSOLE_URL=${base}", "TG_CA_CERT=${o.consoleCa ?: ''}",
            "TG_CONSOLE_INSECURE=${o.consoleInsecure ? 'true' : 'false'}",
            "TG_TIMEOUT=${o.timeout}", "TG_MAX_TIME=${StepOptions.seconds(o.timeout as String) ?: ''}",
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
        // taskguard gives up after this long: --extract-entrypoint reads
        // images from their registries.
        flags += ['--timeout', o.timeout as String]
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
