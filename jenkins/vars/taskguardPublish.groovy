// taskguardPublish sends a `taskguard ci` JSON report to the console
// (POST /api/v1/scans) so that the security team sees every pipeline's
// result. See taskguardPublish.txt.

import groovy.transform.Field
import io.taskguard.jenkins.ConsoleCall
import io.taskguard.jenkins.StepOptions

@Field static final List<String> PUBLISH_PARAMETERS = [
    'json', 'consoleUrl', 'credentialsId', 'consoleCa', 'consoleInsecure', 'failOnError', 'timeout',
]

// Credentials reach curl on its standard input (a config file), never on a
// command line or in the trace; the other values come in through the environment.
@Field static final String PUBLISH_SCRIPT = '''set +x
TMP=$TMPDIR
[ -n "$TMP" ] || TMP=/tmp
TG_ERR=$(mktemp "$TMP/taskguard-publish.XXXXXX")
rc=0
(
resp="$TG_ERR.response"
set -- -sS -X POST -H 'Content-Type: application/json' --data-binary "@$TG_REPORT" -o "$resp" -w '%{http_code}'
''' + ConsoleCall.curl('taskguardPublish') + '''case "$code" in
2??) rm -f "$resp"; echo "scan report $TG_REPORT published to $TG_CONSOLE_URL" ;;
*) body=$(head -c 500 "$resp" | tr '\\n' ' ' | tr -s ' ')
   echo "taskguardPublish: the console answered HTTP $code: $body" >"$TG_ERR"
   rm -f "$resp"; exit 1 ;;
esac
) >&2 || rc=$?
echo "$rc"
cat "$TG_ERR"
rm -f "$TG_ERR"
'''

@Field static final List<String> PUBLISH_BOOLEANS = ['consoleInsecure', 'failOnError']

Map call(Map args = [:]) {
    Map parsed = StepOptions.parse('taskguardPublish', args, [
        parameters: PUBLISH_PARAMETERS, booleans: PUBLISH_BOOLEANS, durations: ['timeout'],
        defaults: [json: 'taskguard-report.json', consoleInsecure: false, failOnError: true, timeout: '10m'],
    ])
    if (parsed.error) {
        error(parsed.error as String)
    }
    Map o = parsed.options as Map
    if (!o.consoleUrl || !o.credentialsId) {
        error('taskguardPublish: consoleUrl and credentialsId are required (a console user with the ci role)')
    }
    if (!fileExists(o.json as String)) {
        error("taskguardPublish: report ${o.json} does not exist (write it with taskguardScan's json parameter)")
    }
    String base = (o.consoleUrl as String).replaceAll('/+$', '')
    String out
    withEnv(["TG_REPORT=${o.json}", "TG_URL=${base}/api/v1/scans", "TG_CONSOLE_URL=${base}",
             "TG_CA_CERT=${o.consoleCa ?: ''}", "TG_CONSOLE_INSECURE=${o.consoleInsecure ? 'true' : 'false'}",
             // curl gives up after timeout (default 10m, as taskguard's
             // --timeout): a console that stops answering fails the stage
             // instead of hanging it.
             "TG_TIMEOUT=${o.timeout}", "TG_MAX_TIME=${StepOptions.seconds(o.timeout as String) ?: ''}"]) {
        withCredentials([usernamePassword(credentialsId: o.credentialsId, usernameVariable: 'TG_USER',
                                          passwordVariable: 'TG_PASS')]) {
            out = sh(script: PUBLISH_SCRIPT, returnStdout: true, label: 'taskguard: publish the scan report')
        }
    }
    List<String> lines = (out ?: '').readLines()
    String first = lines ? lines[0].trim() : ''
    if (first == '0') {
        return [published: true]
    }
    String reason = lines.size() > 1 ? lines.drop(1).join('\n').trim() : "taskguardPublish: exit ${first}"
    if (o.failOnError) {
        error(reason)
    }
    echo("WARNING: ${reason} (failOnError is false: the build goes on)")
    return [published: false, reason: reason]
}

