// taskguardScan runs `taskguard ci` on an image and/or a task definition,
// publishes the JUnit report, archives the reports and applies the gate's
// decision to the build: exit 0 passed, 1 blocked (the stage fails, or the
// build turns UNSTABLE with unstableOnBlock), 2 could not run (the stage
// fails). See taskguardScan.txt for every parameter.
//
// CPS: the step keeps only strings, numbers, lists and maps between steps;
// the helpers that take text apart are @NonCPS and call no step.

import groovy.transform.Field
import io.taskguard.jenkins.StepOptions

@Field static final List<String> SCAN_PARAMETERS = [
    'image', 'input', 'taskDefinition', 'policy', 'ignoreFile', 'severityCutoff', 'onlyFixed',
    'junit', 'sarif', 'json', 'markdown', 'failBuild', 'unstableOnBlock', 'archive',
    'dbRepository', 'cacheDir', 'skipDbUpdate', 'offline',
    'protectedTaskOutput', 'consoleUrl', 'credentialsId', 'consoleCa', 'consoleInsecure', 'consoleAddr', 'publish',
    'agentTokenSecret', 'agentTokenCredentialsId', 'defenderImage', 'extractEntrypoint',
    'dockerfile', 'taskguard',
    'lockfiles', 'includeDevDeps', 'sbom', 'layerCache',
    'include', 'exclude', 'skipImage', 'failClosed', 'defenderPlatforms', 'healthCheck', 'wafPort',
    'timeout',
]

@Field static final List<String> SCAN_BOOLEANS = [
    'onlyFixed', 'failBuild', 'unstableOnBlock', 'archive', 'skipDbUpdate', 'offline',
    'consoleInsecure', 'publish', 'extractEntrypoint', 'lockfiles', 'includeDevDeps', 'layerCache', 'failClosed',
    'healthCheck',
]

// Lists take a Groovy list of strings or one string of comma- or
// newline-separated items (a job parameter), as the Action's inputs do.
@Field static final List<String> SCAN_LISTS = ['include', 'exclude', 'skipImage', 'defenderPlatforms']

// The options that shape the protected task definition.
@Field static final List<String> PROTECT_OPTIONS = [
    'include', 'exclude', 'skipImage', 'failClosed', 'defenderPlatforms', 'healthCheck', 'wafPort',
]

// The command's output goes to the log; the script's own stdout carries only
// the exit status and the last line of taskguard's stderr (the gate's
// reason). No scratch file is shared between steps: each run has its own
// mktemp file, removed at once, so parallel stages in one workspace never
// overwrite each other. Secrets only ever travel in the environment
// (TASKGUARD_CONSOLE_USER/PASSWORD, TASKGUARD_AGENT_TOKEN), never on the
// command line.
@Field static final String RUN_SCRIPT = '''
TMP=$TMPDIR
[ -n "$TMP" ] || TMP=/tmp
err=$(mktemp "$TMP/taskguard-ci.XXXXXX")
rc=0
"$@" 2>"$err" >&2 || rc=$?
cat "$err" >&2
echo "$rc"
grep -v '^[[:space:]]*$' "$err" | tail -n 1
rm -f "$err"
'''

Map call(Map args = [:]) {
    Map parsed = StepOptions.parse('taskguardScan', args, [
        parameters: SCAN_PARAMETERS, booleans: SCAN_BOOLEANS, lists: SCAN_LISTS, ports: ['wafPort'],
        durations: ['timeout'],
        defaults: [
            junit: 'taskguard-junit.xml', json: 'taskguard-report.json',
            failBuild: true, unstableOnBlock: false, archive: true, layerCache: true,
            taskguard: 'taskguard',
        ],
    ])
    if (parsed.error) {
        error(parsed.error as String)
    }
    Map o = parsed.options as Map
    if (o.publish == null) {
        // With a console, the results go to it unless publish is false.
        o.publish = o.consoleUrl as boolean
    }
    if (!o.image && !o.input && !o.taskDefinition) {
        error('taskguardScan: give image, input (a docker-archive tarball) or taskDefinition')
    }
    if (o.image && o.input) {
        error('taskguardScan: give either image or input, not both')
    }
    if (o.consoleUrl && !o.credentialsId) {
        error('taskguardScan: consoleUrl needs credentialsId (a username/password credential of a console user: ' +
              'the ci role reads the CI rules and publishes; protecting needs a role that may protect)')
    }
    if (o.publish && !o.consoleUrl) {
        error('taskguardScan: publish needs consoleUrl and credentialsId')
    }
    if (o.agentTokenSecret && o.agentTokenCredentialsId) {
        error('taskguardScan: give agentTokenSecret (an ARN, recommended) or agentTokenCredentialsId, not both')
    }
    if (o.protectedTaskOutput && !o.taskDefinition) {
        error('taskguardScan: protectedTaskOutput needs taskDefinition')
    }
    List<String> protectGiven = given(o, PROTECT_OPTIONS)
    if (protectGiven && !o.protectedTaskOutput) {
        error("taskguardScan: ${protectGiven.join(', ')} shape the protected task definition: " +
              'give protectedTaskOutput (and taskDefinition) too')
    }
    List<String> offlineOnly = given(o, ['healthCheck', 'wafPort'])
    if (offlineOnly && o.consoleUrl && o.protectedTaskOutput) {
        error("taskguardScan: ${offlineOnly.join(' and ')}: only a task protected offline (without consoleUrl) " +
              'takes this; the console maps the external ports of its own WAF rules and gives the defender ' +
              'no health check')
    }
    if (o.includeDevDeps && !o.lockfiles) {
        error("taskguardScan: includeDevDeps needs lockfiles: true (it adds the lock files' development-only packages)")
    }
    if (o.sbom && !o.image && !o.input) {
        error('taskguardScan: sbom needs image or input (the SBOM lists the scanned image\'s packages)')
    }

    List<String> cmd = [o.taskguard as String, 'ci', '--format', 'table']
    addFlag(cmd, '--image', o.image)
    addFlag(cmd, '--input', o.input)
    addFlag(cmd, '--task', o.taskDefinition)
    addFlag(cmd, '--policy', o.policy)
    addFlag(cmd, '--ignore-file', o.ignoreFile)
    addFlag(cmd, '--severity-cutoff', o.severityCutoff)
    addSwitch(cmd, '--only-fixed', o.onlyFixed)
    addSwitch(cmd, '--lockfiles', o.lockfiles)
    addSwitch(cmd, '--include-dev-deps', o.includeDevDeps)
    addFlag(cmd, '--junit', o.junit)
    addFlag(cmd, '--sarif', o.sarif)
    addFlag(cmd, '--json', o.json)
    addFlag(cmd, '--markdown', o.markdown)
    addFlag(cmd, '--sbom', o.sbom)
    addFlag(cmd, '--dockerfile', o.dockerfile)
    addFlag(cmd, '--db-repository', o.dbRepository)
    addFlag(cmd, '--cache-dir', o.cacheDir)
    addSwitch(cmd, '--skip-db-update', o.skipDbUpdate)
    addSwitch(cmd, '--offline', o.offline)
    // taskguard gives up after this long (default 10m): a registry or DB
    // mirror that stops answering fails the stage instead of hanging it.
    addFlag(cmd, '--timeout', o.timeout)
    // The layer cache lives beside the DB (<cacheDir>/layers): layers seen
    // before are not read again.
    addSwitch(cmd, '--no-cache', !o.layerCache)
    // A console's CI rules apply whenever consoleUrl is given, as in the CLI
    // and the GitHub Action: the same rule gives the same verdict everywhere.
    if (o.consoleUrl) {
        addFlag(cmd, '--console', o.consoleUrl)
        addSwitch(cmd, '--console-insecure', o.consoleInsecure)
        addSwitch(cmd, '--no-publish', !o.publish)
    }
    // With consoleUrl the CA is the console's for taskguard; without, the
    // one the defender of a task protected offline trusts.
    if (o.consoleUrl || o.protectedTaskOutput) {
        addFlag(cmd, '--console-ca', o.consoleCa)
    }
    if (o.protectedTaskOutput) {
        // With a console, the console protects the task and mints the
        // defender's credential (none with agentTokenSecret: the task then
        // holds the ARN as an ECS secret); without, taskguard protects it
        // offline.
        addFlag(cmd, '--protected-task-output', o.protectedTaskOutput)
        addFlag(cmd, '--console-addr', o.consoleAddr)
        addFlag(cmd, '--agent-token-secret', o.agentTokenSecret)
        addFlag(cmd, '--defender-image', o.defenderImage)
        addSwitch(cmd, '--extract-entrypoint', o.extractEntrypoint)
        addEach(cmd, '--include', o.include)
        addEach(cmd, '--exclude', o.exclude)
        addEach(cmd, '--skip-image', o.skipImage)
        addEach(cmd, '--defender-platforms', o.defenderPlatforms)
        addSwitch(cmd, '--fail-closed', o.failClosed)
        addEach(cmd, '--waf-port', o.wafPort)
        addSwitch(cmd, '--health-check', o.healthCheck)
    }

    // A report or protected task definition left in the workspace by an
    // earlier build must not pass for this run's: a run that could not
    // write its own (it gave up at --timeout, the registry failed) leaves
    // none to publish or archive.
    String script = removeOutputs(o) + 'set -- ' + quoteAll(cmd) + '\n' + RUN_SCRIPT
    List creds = []
    if (o.consoleUrl) {
        creds << usernamePassword(credentialsId: o.credentialsId, usernameVariable: 'TASKGUARD_CONSOLE_USER',
                                  passwordVariable: 'TASKGUARD_CONSOLE_PASSWORD')
    }
    if (o.agentTokenCredentialsId) {
        creds << string(credentialsId: o.agentTokenCredentialsId, variable: 'TASKGUARD_AGENT_TOKEN')
    }
    String out
    if (creds) {
        withCredentials(creds) {
            out = sh(script: script, returnStdout: true, label: 'taskguard ci')
        }
    } else {
        out = sh(script: script, returnStdout: true, label: 'taskguard ci')
    }
    Map run = parseRun(out)
    int status = run.status as int
    String reason = run.reason as String

    Map result = [
        status: status, result: status == 0 ? 'passed' : (status == 1 ? 'blocked' : 'error'), reason: reason,
        junit: present(o.junit), sarif: present(o.sarif), json: present(o.json), markdown: present(o.markdown),
        sbom: present(o.sbom), protectedTaskDefinition: present(o.protectedTaskOutput),
    ]
    if (result.junit) {
        // The gate decides the build result, not the count of failed test cases.
        junit(testResults: result.junit, allowEmptyResults: true, skipMarkingBuildUnstable: true)
    }
    if (o.archive) {
        List<String> files = []
        for (String key : ['junit', 'sarif', 'json', 'markdown', 'sbom', 'protectedTaskDefinition']) {
            if (result[key]) {
                files << (result[key] as String)
            }
        }
        if (files) {
            archiveArtifacts(artifacts: files.join(','), fingerprint: true)
        }
    }

    String target = (o.image ?: o.input ?: o.taskDefinition) as String
    if (status == 1) {
        String message = "taskguard: ${target} ${reason}"
        if (!o.failBuild) {
            echo("WARNING: ${message} (failBuild is false: the build goes on)")
        } else if (o.unstableOnBlock) {
            unstable(message: message)
        } else {
            error(message)
        }
    } else if (status != 0) {
        error("taskguard could not run (exit ${status}) on ${target}: ${reason}")
    }
    return result
}

private String present(Object path) {
    return path && fileExists(path as String) ? path as String : null
}

// given returns the keys whose values are set (true, a non-empty list).
@NonCPS
private static List<String> given(Map o, List<String> keys) {
    return keys.findAll { String k -> o[k] }
}

// removeOutputs returns the shell line that removes the files the run is to
// write (reports, SBOM, protected task definition), or '' for none.
@NonCPS
private static String removeOutputs(Map o) {
    List<String> paths = []
    for (String key : ['junit', 'sarif', 'json', 'sbom', 'protectedTaskOutput']) {
        if (o[key]) {
            paths << o[key].toString()
        }
    }
    return paths ? 'rm -f -- ' + quoteAll(paths) + '\n' : ''
}

// parseRun reads RUN_SCRIPT's stdout: the exit status, then the reason.
@NonCPS
private static Map parseRun(String out) {
    List<String> lines = (out ?: '').readLines()
    String first = lines ? lines[0].trim() : ''
    if (!(first ==~ /\d+/)) {
        return [status: 2, reason: "taskguardScan: the taskguard step printed no exit status (${first})"]
    }
    String reason = lines.size() > 1 ? lines[1].trim().replaceFirst('^taskguard: ', '') : ''
    return [status: first as int, reason: reason]
}

@NonCPS
private static void addFlag(List<String> cmd, String flag, Object value) {
    if (value) {
        cmd << flag
        cmd << value.toString()
    }
}

// addEach adds flag once per item (the CLI's flags are repeatable).
@NonCPS
private static void addEach(List<String> cmd, String flag, List<String> items) {
    for (String item : items) {
        cmd << flag
        cmd << item
    }
}

@NonCPS
private static void addSwitch(List<String> cmd, String flag, Object on) {
    if (on) {
        cmd << flag
    }
}

@NonCPS
private static String quote(String s) {
    return "'" + s.replace("'", "'\"'\"'") + "'"
}

@NonCPS
private static String quoteAll(List<String> words) {
    List<String> quoted = []
    for (String w : words) {
        quoted << quote(w)
    }
    return quoted.join(' ')
}
