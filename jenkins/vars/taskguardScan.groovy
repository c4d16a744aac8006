// taskguardScan runs `taskguard ci` on an image and/or a task definition,
// publishes the JUnit report, archives the reports and applies the gate's
// decision to the build: exit 0 passed, 1 blocked (the stage fails, or the
// build turns UNSTABLE with unstableOnBlock), 2 could not run (the stage
// fails). See taskguardScan.txt for every parameter.

import groovy.transform.Field

@Field static final List<String> SCAN_PARAMETERS = [
    'image', 'input', 'taskDefinition', 'policy', 'ignoreFile', 'severityCutoff', 'onlyFixed',
    'junit', 'sarif', 'json', 'markdown', 'failBuild', 'unstableOnBlock', 'archive',
    'dbRepository', 'cacheDir', 'skipDbUpdate', 'offline',
    'protectedTaskOutput', 'consoleUrl', 'credentialsId', 'consoleCa', 'consoleInsecure', 'consoleAddr', 'publish',
    'agentTokenSecret', 'agentTokenCredentialsId', 'defenderImage', 'extractEntrypoint',
    'dockerfile', 'taskguard',
]

Map call(Map args = [:]) {
    for (String key : args.keySet()) {
        if (!(key in SCAN_PARAMETERS)) {
            error("taskguardScan: unknown parameter '${key}' (see taskguardScan.txt for the list)")
        }
    }
    Map o = [
        junit: 'taskguard-junit.xml', json: 'taskguard-report.json',
        failBuild: true, unstableOnBlock: false, archive: true, publish: false,
        taskguard: 'taskguard',
    ] + args
    if (!o.image && !o.input && !o.taskDefinition) {
        error('taskguardScan: give image, input (a docker-archive tarball) or taskDefinition')
    }
    if (o.image && o.input) {
        error('taskguardScan: give either image or input, not both')
    }
    if (o.consoleUrl && !o.credentialsId && (o.protectedTaskOutput || o.publish)) {
        error('taskguardScan: consoleUrl needs credentialsId (a username/password credential of a console user)')
    }

    List<String> cmd = [o.taskguard as String, 'ci', '--format', 'table']
    addFlag(cmd, '--image', o.image)
    addFlag(cmd, '--input', o.input)
    addFlag(cmd, '--task', o.taskDefinition)
    addFlag(cmd, '--policy', o.policy)
    addFlag(cmd, '--ignore-file', o.ignoreFile)
    addFlag(cmd, '--severity-cutoff', o.severityCutoff)
    if (o.onlyFixed) {
        cmd << '--only-fixed'
    }
    addFlag(cmd, '--junit', o.junit)
    addFlag(cmd, '--sarif', o.sarif)
    addFlag(cmd, '--json', o.json)
    addFlag(cmd, '--markdown', o.markdown)
    addFlag(cmd, '--dockerfile', o.dockerfile)
    addFlag(cmd, '--db-repository', o.dbRepository)
    addFlag(cmd, '--cache-dir', o.cacheDir)
    if (o.skipDbUpdate) {
        cmd << '--skip-db-update'
    }
    if (o.offline) {
        cmd << '--offline'
    }
    if (o.protectedTaskOutput) {
        if (!o.taskDefinition) {
            error('taskguardScan: protectedTaskOutput needs taskDefinition')
        }
        addFlag(cmd, '--protected-task-output', o.protectedTaskOutput)
        // With a console, the console protects the task and mints the
        // defender's credential; without, taskguard protects it offline.
        addFlag(cmd, '--console', o.consoleUrl)
        addFlag(cmd, '--console-ca', o.consoleCa)
        if (o.consoleInsecure) {
            cmd << '--console-insecure'
        }
        addFlag(cmd, '--console-addr', o.consoleAddr)
        addFlag(cmd, '--agent-token-secret', o.agentTokenSecret)
        addFlag(cmd, '--defender-image', o.defenderImage)
        if (o.extractEntrypoint) {
            cmd << '--extract-entrypoint'
        }
    }

    // stderr goes to a file too, so that the gate's reason reaches the
    // stage's error message. Secrets only ever travel in the environment
    // (TASKGUARD_CONSOLE_USER/PASSWORD, TASKGUARD_AGENT_TOKEN), never on the
    // command line.
    String stderrFile = '.taskguard-ci.stderr'
    String script = 'rc=0\n' +
        quoteAll(cmd) + ' 2>' + quote(stderrFile) + ' || rc=$?\n' +
        'cat ' + quote(stderrFile) + ' >&2\n' +
        'exit $rc\n'
    List creds = []
    if (o.consoleUrl && o.protectedTaskOutput && o.credentialsId) {
        creds << usernamePassword(credentialsId: o.credentialsId, usernameVariable: 'TASKGUARD_CONSOLE_USER',
                                  passwordVariable: 'TASKGUARD_CONSOLE_PASSWORD')
    }
    if (o.agentTokenCredentialsId) {
        creds << string(credentialsId: o.agentTokenCredentialsId, variable: 'TASKGUARD_AGENT_TOKEN')
    }
    int status
    if (creds) {
        withCredentials(creds) {
            status = sh(script: script, returnStatus: true, label: 'taskguard ci')
        }
    } else {
        status = sh(script: script, returnStatus: true, label: 'taskguard ci')
    }
    String reason = fileExists(stderrFile) ? lastLine(readFile(stderrFile) as String) : ''

    Map result = [
        status: status, result: status == 0 ? 'passed' : (status == 1 ? 'blocked' : 'error'), reason: reason,
        junit: present(o.junit), sarif: present(o.sarif), json: present(o.json), markdown: present(o.markdown),
        protectedTaskDefinition: present(o.protectedTaskOutput),
    ]
    if (result.junit) {
        // The gate decides the build result, not the count of failed test cases.
        junit(testResults: result.junit, allowEmptyResults: true, skipMarkingBuildUnstable: true)
    }
    if (o.archive) {
        List<String> files = []
        for (String key : ['junit', 'sarif', 'json', 'markdown', 'protectedTaskDefinition']) {
            if (result[key]) {
                files << (result[key] as String)
            }
        }
        if (files) {
            archiveArtifacts(artifacts: files.join(','), fingerprint: true)
        }
    }
    if (o.publish && result.json) {
        taskguardPublish(json: result.json, consoleUrl: o.consoleUrl, credentialsId: o.credentialsId,
                         consoleCa: o.consoleCa, consoleInsecure: o.consoleInsecure)
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

private void addFlag(List<String> cmd, String flag, Object value) {
    if (value) {
        cmd << flag
        cmd << value.toString()
    }
}

private String present(Object path) {
    return path && fileExists(path as String) ? path as String : null
}

private String lastLine(String text) {
    List<String> lines = text.readLines()
    for (int i = lines.size() - 1; i >= 0; i--) {
        String line = lines[i].trim()
        if (line) {
            return line.replaceFirst('^taskguard: ', '')
        }
    }
    return ''
}

private String quote(String s) {
    return "'" + s.replace("'", "'\"'\"'") + "'"
}

private String quoteAll(List<String> words) {
    List<String> quoted = []
    for (String w : words) {
        quoted << quote(w)
    }
    return quoted.join(' ')
}
