// A small Jenkins pipeline harness: runs Jenkinsfiles and the shared library's
// vars/ under plain Groovy, with the pipeline steps the library uses. `sh`
// really runs its script (/bin/sh -xe, like Jenkins); the other steps act on
// the workspace and the build as Jenkins would and every call is recorded.
//
//   groovy harness.groovy MANIFEST.json RESULTS.json
//
// MANIFEST is {"vars": DIR, "scenarios": [{name, jenkinsfile, workspace,
// buildDir, env: {}, credentials: {id: {username, password} | {secret}}}]}.
// RESULTS holds, per scenario: result, error, calls, log (masked like
// Jenkins masks credentials), rawLog (unmasked), archived files and stages.

// The harness runs on a build machine, not in a Java EE container, and takes
// the pipeline's untyped step arguments apart: these rules do not apply. The
// declarative DSL's names are Jenkins' own (`when`, `post`, `equals`, ...).
/* groovylint-disable JavaIoPackageAccess, Instanceof, FileCreateTempFile */
/* groovylint-disable EqualsOverloaded, ConfusingMethodName, UnusedMethodParameter */

import groovy.json.JsonOutput
import groovy.json.JsonSlurper
import java.lang.annotation.ElementType
import java.lang.annotation.Retention
import java.lang.annotation.RetentionPolicy
import java.lang.annotation.Target
import org.codehaus.groovy.control.CompilerConfiguration
import org.codehaus.groovy.control.customizers.ImportCustomizer
import java.nio.file.FileSystems
import java.nio.file.Files
import java.nio.file.PathMatcher
import java.nio.file.StandardCopyOption
import java.util.concurrent.TimeUnit

/** Jenkins' @NonCPS, which pipeline scripts use without an import. */
@Retention(RetentionPolicy.RUNTIME)
@Target(ElementType.METHOD)
@interface NonCPS { }

/** Thrown by `error` and failing steps, like hudson.AbortException. */
class AbortException extends RuntimeException {
    AbortException(String message) { super(message) }
}

/** The `currentBuild` global: its result only ever gets worse. */
class Build {
    private static final List<String> ORDER = ['SUCCESS', 'UNSTABLE', 'FAILURE', 'ABORTED']
    String result

    void setResult(String r) {
        if (!(r in ORDER)) {
            throw new IllegalArgumentException("currentBuild.result: unknown result ${r}")
        }
        if (result == null || ORDER.indexOf(r) > ORDER.indexOf(result)) {
            result = r
        }
    }

    String getResult() { result }

    String getCurrentResult() { result ?: 'SUCCESS' }
}

/** The `env` global: property access over a stack-scoped map. */
class Env {
    Map<String, String> vars = [:]

    def propertyMissing(String name) { vars[name] }

    def propertyMissing(String name, value) { vars[name] = value == null ? null : value.toString() }

    Map<String, String> getEnvironment() { new LinkedHashMap<String, String>(vars) }
}

/** Collects `name = value` assignments of a declarative `environment {}` block. */
class EnvironmentBlock {
    Env env

    def propertyMissing(String name, value) { env.vars[name] = value.toString() }

    def propertyMissing(String name) { env.vars[name] }
}

/** The build's `post {}` conditions, run after the stages. */
class PostBlock {
    Map<String, Closure> conditions = [:]

    def methodMissing(String name, args) {
        if (!(name in ['always', 'success', 'failure', 'unstable', 'cleanup'])) {
            throw new MissingMethodException(name, PostBlock, args as Object[])
        }
        conditions[name] = (args as Object[])[-1] as Closure
    }
}

/**
 * A declarative `when {}`: its conditions, all of which must hold. Supports
 * expression, environment, branch, equals, not, allOf and anyOf.
 */
class WhenBlock {
    Harness h
    List<Closure<Boolean>> conditions = []

    void expression(Closure c) { conditions << { -> c.call() as boolean } }

    void environment(Map a) { conditions << { -> h.env.vars[a.name as String] == a.value?.toString() } }

    void branch(String pattern) {
        conditions << { ->
            String b = h.env.vars.BRANCH_NAME
            b != null && FileSystems.default.getPathMatcher('glob:' + pattern).matches(java.nio.file.Paths.get(b))
        }
    }

    void equals(Map a) { conditions << { -> a.expected?.toString() == a.actual?.toString() } }

    void not(Closure c) {
        WhenBlock inner = h.when(c)
        conditions << { -> !inner.holds() }
    }

    void allOf(Closure c) {
        WhenBlock inner = h.when(c)
        conditions << { -> inner.holds() }
    }

    void anyOf(Closure c) {
        WhenBlock inner = h.when(c)
        conditions << { -> inner.conditions.any { it.call() } }
    }

    boolean holds() { conditions.every { it.call() } }
}

/**
 * One declarative stage's sections, collected before any runs: `when` is
 * judged first, then `environment`, then `steps`, `parallel` or `stages`,
 * then the stage's own `post`.
 */
class StageBlock {
    Harness h
    WhenBlock when
    Closure environmentBody
    Closure stepsBody
    Closure parallelBody
    Closure stagesBody
    PostBlock post

    void when(Closure c) { when = h.when(c) }

    void environment(Closure c) { environmentBody = c }

    void steps(Closure c) { stepsBody = c }

    void parallel(Closure c) { parallelBody = c }

    void stages(Closure c) { stagesBody = c }

    void post(Closure c) { post = h.postBlock(c) }

    void agent(Object a) { h.record('agent', [agent: a.toString()]) }

    void options(Closure c) { h.record('options', [:]) }

    void failFast(boolean b) { h.record('failFast', [value: b]) }
}

/** Collects the `stage` calls of a declarative `parallel {}` block. */
class ParallelBlock {
    Map<String, Closure> branches = [:]

    void stage(String name, Closure body) { branches[name] = body }
}

/** Harness is one build: a workspace, its steps and what they did. */
class Harness {
    File workspace
    File buildDir
    File varsDir
    Binding binding = new Binding()
    Env env = new Env()
    Build currentBuild = new Build()
    Map credentials
    List<Map> calls = []
    List<String> stages = []
    StringBuilder log = new StringBuilder()
    StringBuilder rawLog = new StringBuilder()
    Set<String> masks = new LinkedHashSet<String>()
    boolean declarative
    boolean stageFailed

    Harness(Map scenario, File varsDir) {
        this.workspace = new File(scenario.workspace as String)
        this.buildDir = new File(scenario.buildDir as String)
        this.varsDir = varsDir
        this.credentials = (scenario.credentials ?: [:]) as Map
        env.vars.putAll(System.getenv())
        env.vars.WORKSPACE = workspace.path
        env.vars.BUILD_NUMBER = '1'
        env.vars.JOB_NAME = scenario.name as String
        (scenario.env ?: [:]).each { k, v -> env.vars[k as String] = v as String }
        bindSteps()
        loadVars()
    }

    Map record(String step, Map args) {
        Map entry = [step: step]
        entry.putAll(args)
        calls << entry
        return entry
    }

    void print(String text) {
        rawLog.append(text)
        String masked = text
        for (String secret : masks) {
            if (secret) {
                masked = masked.replace(secret, '****')
            }
        }
        log.append(masked)
    }

    File file(String path) {
        File f = new File(path)
        f.isAbsolute() ? f : new File(workspace, path)
    }

    /** Runs body with extra environment variables, restoring them afterwards. */
    def withVars(Map<String, String> extra, Closure body) {
        Map<String, String> saved = new LinkedHashMap<String, String>(env.vars)
        env.vars.putAll(extra)
        try {
            return body.call()
        } finally {
            env.vars.clear()
            env.vars.putAll(saved)
        }
    }

    def sh(Object arg) {
        Map m = arg instanceof Map ? (Map) arg : [script: arg.toString()]
        String script = m.script as String
        boolean returnStatus = m.returnStatus as boolean
        boolean returnStdout = m.returnStdout as boolean
        Map call = record('sh', [script: script, returnStatus: returnStatus, returnStdout: returnStdout,
                                 label: m.label])
        File tmp = new File(buildDir, 'tmp')
        tmp.mkdirs()
        File scriptFile = File.createTempFile('script', '.sh', tmp)
        File out = new File(scriptFile.path + '.out')
        File err = new File(scriptFile.path + '.err')
        scriptFile.text = script
        ProcessBuilder pb = new ProcessBuilder('/bin/sh', '-xe', scriptFile.path).directory(workspace)
        pb.environment().clear()
        env.vars.each { k, v ->
            if (v != null) {
                pb.environment().put(k, v)
            }
        }
        pb.redirectInput(ProcessBuilder.Redirect.from(new File('/dev/null')))
        pb.redirectOutput(out)
        pb.redirectError(err)
        Process p = pb.start()
        if (!p.waitFor(180, TimeUnit.SECONDS)) {
            p.destroyForcibly()
            throw new AbortException('sh: script did not finish within 180s')
        }
        int code = p.exitValue()
        call.exitCode = code
        String stdout = out.text
        if (!returnStdout) {
            print(stdout)
        }
        print(err.text)
        if (returnStatus) {
            return code
        }
        if (code != 0) {
            throw new AbortException("script returned exit code ${code}")
        }
        return returnStdout ? stdout : null
    }

    List<File> matchFiles(String patterns) {
        List<File> found = []
        for (String pattern : patterns.split(',')) {
            pattern = pattern.trim()
            if (!pattern) {
                continue
            }
            PathMatcher matcher = FileSystems.default.getPathMatcher('glob:' + pattern)
            workspace.eachFileRecurse { File f ->
                if (f.isFile() && matcher.matches(workspace.toPath().relativize(f.toPath())) && !(f in found)) {
                    found << f
                }
            }
        }
        found
    }

    void bindSteps() {
        Harness h = this
        binding.setVariable('env', env)
        binding.setVariable('currentBuild', currentBuild)
        binding.setVariable('params', [:])
        binding.setVariable('scm', 'scm')
        binding.setVariable('any', 'any')
        binding.setVariable('sh', { Object a -> h.sh(a) })
        binding.setVariable('echo', { Object msg ->
            h.record('echo', [message: msg.toString()])
            h.print(msg.toString() + '\n')
        })
        binding.setVariable('error', { Object msg ->
            h.record('error', [message: msg.toString()])
            throw new AbortException(msg.toString())
        })
        binding.setVariable('unstable', { Object a ->
            String msg = a instanceof Map ? (a as Map).message as String : a.toString()
            h.record('unstable', [message: msg])
            h.print("WARNING: ${msg}\n")
            h.currentBuild.setResult('UNSTABLE')
        })
        binding.setVariable('isUnix', { -> true })
        binding.setVariable('checkout', { Object a -> h.record('checkout', [scm: a.toString()]) })
        binding.setVariable('fileExists', { Object a ->
            String path = a instanceof Map ? (a as Map).file as String : a.toString()
            h.record('fileExists', [file: path])
            h.file(path).exists()
        })
        binding.setVariable('readFile', { Object a ->
            String path = a instanceof Map ? (a as Map).file as String : a.toString()
            h.record('readFile', [file: path])
            File f = h.file(path)
            if (!f.exists()) {
                throw new AbortException("readFile: ${path} does not exist")
            }
            f.text
        })
        binding.setVariable('writeFile', { Map a ->
            h.record('writeFile', [file: a.file])
            File f = h.file(a.file as String)
            f.parentFile.mkdirs()
            f.text = a.text as String
        })
        binding.setVariable('withEnv', { List overrides, Closure body ->
            h.record('withEnv', [overrides: overrides])
            Map<String, String> extra = [:]
            for (Object o : overrides) {
                String s = "${o}"
                int eq = s.indexOf('=')
                extra[s.substring(0, eq)] = s.substring(eq + 1)
            }
            h.withVars(extra, body)
        })
        binding.setVariable('usernamePassword', { Map a -> [type: 'usernamePassword'] + a })
        binding.setVariable('string', { Map a -> [type: 'string'] + a })
        binding.setVariable('withCredentials', { List bindings, Closure body ->
            h.record('withCredentials', [bindings: bindings])
            Map<String, String> extra = [:]
            for (Map b : bindings) {
                Map cred = h.credentials[b.credentialsId as String] as Map
                if (cred == null) {
                    throw new AbortException("Could not find credentials entry with ID '${b.credentialsId}'")
                }
                if (b.type == 'usernamePassword') {
                    extra[b.usernameVariable as String] = cred.username as String
                    extra[b.passwordVariable as String] = cred.password as String
                    h.masks << (cred.password as String)
                } else {
                    extra[b.variable as String] = cred.secret as String
                    h.masks << (cred.secret as String)
                }
            }
            h.withVars(extra, body)
        })
        binding.setVariable('junit', { Object a ->
            Map m = a instanceof Map ? (Map) a : [testResults: a.toString()]
            List<File> files = h.matchFiles(m.testResults as String)
            int tests = 0
            int failures = 0
            for (File f : files) {
                def xml = new XmlSlurper().parse(f)
                List suites = xml.name() == 'testsuite' ? [xml] : xml.testsuite.list()
                for (def s : suites) {
                    tests += (s.@tests.text() ?: '0') as int
                    failures += ((s.@failures.text() ?: '0') as int) + ((s.@errors.text() ?: '0') as int)
                }
            }
            h.record('junit', m + [files: files*.name, tests: tests, failures: failures])
            if (files.isEmpty() && !m.allowEmptyResults) {
                throw new AbortException("No test report files were found matching ${m.testResults}")
            }
            if (failures > 0 && !m.skipMarkingBuildUnstable) {
                h.currentBuild.setResult('UNSTABLE')
            }
            [totalCount: tests, failCount: failures]
        })
        binding.setVariable('archiveArtifacts', { Object a ->
            Map m = a instanceof Map ? (Map) a : [artifacts: a.toString()]
            List<File> files = h.matchFiles(m.artifacts as String)
            List<String> names = files.collect { h.workspace.toPath().relativize(it.toPath()).toString() }
            h.record('archiveArtifacts', m + [files: names])
            if (files.isEmpty() && !m.allowEmptyArchive) {
                throw new AbortException("No artifacts found that match the file pattern \"${m.artifacts}\"")
            }
            for (String n : names) {
                File dst = new File(h.buildDir, 'archive/' + n)
                dst.parentFile.mkdirs()
                Files.copy(h.file(n).toPath(), dst.toPath(), StandardCopyOption.REPLACE_EXISTING)
            }
        })
        // Warnings Next Generation: the SARIF parser reads the file named by the tool's pattern.
        binding.setVariable('sarif', { Map a -> [tool: 'sarif'] + a })
        binding.setVariable('recordIssues', { Map a ->
            List<String> found = []
            for (Map tool : a.tools) {
                found.addAll(h.matchFiles(tool.pattern as String)*.name)
            }
            h.record('recordIssues', a + [files: found])
        })
        binding.setVariable('node', { Object[] a ->
            h.record('node', [label: a.length > 1 ? a[0] : null])
            (a[-1] as Closure).call()
        })
        binding.setVariable('stage', { String name, Closure body -> h.stage(name, body) })
        // Scripted parallel: branches run one after the other (the harness's
        // environment is one map), each to its end even when one fails,
        // unless failFast; then the first failure fails the step.
        binding.setVariable('parallel', { Map branches -> h.parallelBranches(branches) })

        // Declarative pipelines.
        binding.setVariable('pipeline', { Closure body -> h.pipeline(body) })
        binding.setVariable('agent', { Object a -> h.record('agent', [agent: a.toString()]) })
        binding.setVariable('options', { Closure body -> h.record('options', [:]) })
        binding.setVariable('environment', { Closure body ->
            body.delegate = new EnvironmentBlock(env: h.env)
            body.resolveStrategy = Closure.DELEGATE_FIRST
            body.call()
        })
        binding.setVariable('stages', { Closure body -> body.call() })
        binding.setVariable('steps', { Closure body -> body.call() })
        binding.setVariable('script', { Closure body -> body.call() })
        binding.setVariable('post', { Closure body -> h.binding.setVariable('__post', h.postBlock(body)) })
    }

    WhenBlock when(Closure c) {
        WhenBlock w = new WhenBlock(h: this)
        c.delegate = w
        c.resolveStrategy = Closure.DELEGATE_FIRST
        c.call()
        w
    }

    PostBlock postBlock(Closure body) {
        PostBlock post = new PostBlock()
        body.delegate = post
        body.resolveStrategy = Closure.DELEGATE_FIRST
        body.call()
        post
    }

    /** Runs a post block's conditions for a result, as Jenkins orders them. */
    void runPost(PostBlock post, String result, String where) {
        for (String cond : ['always', result.toLowerCase(), 'cleanup']) {
            Closure c = post.conditions[cond]
            if (c != null) {
                record('post', [condition: cond, stage: where])
                c.call()
            }
        }
    }

    def stage(String name, Closure body) {
        if (declarative) {
            return declarativeStage(name, body)
        }
        record('stage', [name: name])
        print("[Pipeline] { (${name})\n")
        try {
            Object r = body.call()
            stages << name + ': ' + (currentBuild.result ?: 'SUCCESS')
            return r
        } catch (AbortException e) {
            stages << name + ': FAILURE'
            currentBuild.setResult('FAILURE')
            print("ERROR: ${e.message}\n")
            throw e
        }
    }

    def declarativeStage(String name, Closure body) {
        if (stageFailed) {
            stages << name + ': skipped'
            record('stage', [name: name, status: 'skipped'])
            return null
        }
        StageBlock sb = new StageBlock(h: this)
        body.delegate = sb
        body.resolveStrategy = Closure.DELEGATE_FIRST
        body.call()
        if (sb.when != null && !sb.when.holds()) {
            stages << name + ': skipped (when)'
            record('stage', [name: name, status: 'skipped (when)'])
            return null
        }
        record('stage', [name: name])
        print("[Pipeline] { (${name})\n")
        String before = currentBuild.currentResult
        String status = 'SUCCESS'
        Map<String, String> saved = new LinkedHashMap<String, String>(env.vars)
        try {
            if (sb.environmentBody != null) {
                sb.environmentBody.delegate = new EnvironmentBlock(env: env)
                sb.environmentBody.resolveStrategy = Closure.DELEGATE_FIRST
                sb.environmentBody.call()
            }
            if (sb.parallelBody != null) {
                ParallelBlock pb = new ParallelBlock()
                sb.parallelBody.delegate = pb
                sb.parallelBody.resolveStrategy = Closure.DELEGATE_FIRST
                sb.parallelBody.call()
                parallelStages(pb.branches)
            } else if (sb.stagesBody != null) {
                sb.stagesBody.call()
            } else if (sb.stepsBody != null) {
                sb.stepsBody.call()
            }
            if (stageFailed) {
                status = 'FAILURE'
            } else if (currentBuild.currentResult == 'UNSTABLE' && before != 'UNSTABLE') {
                status = 'UNSTABLE'
            }
        } catch (AbortException e) {
            status = 'FAILURE'
            currentBuild.setResult('FAILURE')
            print("ERROR: ${e.message}\n")
            stageFailed = true
            record('stageError', [name: name, message: e.message])
        } finally {
            env.vars.clear()
            env.vars.putAll(saved)
        }
        stages << name + ': ' + (status == 'SUCCESS' ? (currentBuild.result ?: 'SUCCESS') : status)
        if (sb.post != null) {
            try {
                runPost(sb.post, status, name)
            } catch (AbortException e) {
                currentBuild.setResult('FAILURE')
                stageFailed = true
                record('stageError', [name: name + ' (post)', message: e.message])
            }
        }
        return null
    }

    /** Declarative parallel stages: every branch runs, then any failure fails the parent. */
    void parallelStages(Map<String, Closure> branches) {
        record('parallel', [branches: branches.keySet() as List])
        boolean failed = false
        for (Map.Entry<String, Closure> b : branches) {
            stageFailed = false
            stage(b.key, b.value)
            failed = failed || stageFailed
        }
        stageFailed = failed
    }

    /** Scripted parallel: a map of branch name to closure (failFast: optional). */
    def parallelBranches(Map branches) {
        boolean failFast = branches.failFast as boolean
        Map<String, Closure> todo = branches.findAll { k, v -> k != 'failFast' } as Map<String, Closure>
        record('parallel', [branches: todo.keySet() as List, failFast: failFast])
        AbortException first = null
        for (Map.Entry<String, Closure> b : todo) {
            try {
                b.value.call()
            } catch (AbortException e) {
                print("ERROR: branch ${b.key}: ${e.message}\n")
                first = first ?: e
                if (failFast) {
                    break
                }
            }
        }
        if (first != null) {
            throw first
        }
        return null
    }

    def pipeline(Closure body) {
        declarative = true
        body.call()
        PostBlock post = binding.hasVariable('__post') ? binding.getVariable('__post') as PostBlock : null
        if (post != null) {
            runPost(post, currentBuild.currentResult, null)
        }
    }

    /**
     * Compiles pipeline code as Jenkins does: @NonCPS needs no import, and
     * the library's src/ (beside vars/) is on the classpath.
     */
    GroovyShell shell() {
        CompilerConfiguration config = new CompilerConfiguration()
        config.addCompilationCustomizers(new ImportCustomizer().addImport('NonCPS', NonCPS.name))
        GroovyShell shell = new GroovyShell(this.class.classLoader, binding, config)
        shell.classLoader.addClasspath(new File(varsDir.parentFile, 'src').path)
        shell
    }

    void loadVars() {
        GroovyShell shell = shell()
        varsDir.eachFileMatch(~/.*\.groovy/) { File f ->
            String name = f.name - '.groovy'
            Script s = shell.parse(f.text, name)
            s.binding = binding
            binding.setVariable(name, { Object[] a -> s.invokeMethod('call', a) })
        }
    }

    /** Runs a Jenkinsfile; the `@Library(...) _` line is Jenkins' business. */
    Map run(File jenkinsfile) {
        String text = jenkinsfile.text.replaceAll(/(?m)^@Library\(.*\)\s*_\s*$/, '')
        String error = null
        try {
            Script s = shell().parse(text, 'Jenkinsfile')
            s.run()
            if (stageFailed) {
                error = calls.findAll { it.step == 'stageError' }.collect { it.message }.join('\n')
            }
        } catch (AbortException e) {
            currentBuild.setResult('FAILURE')
            error = e.message
            print("ERROR: ${e.message}\n")
        }
        List<String> archived = []
        File archive = new File(buildDir, 'archive')
        if (archive.exists()) {
            archive.eachFileRecurse { File f ->
                if (f.isFile()) {
                    archived << archive.toPath().relativize(f.toPath()).toString()
                }
            }
        }
        [result: currentBuild.currentResult, error: error, calls: calls, stages: stages,
         log: log.toString(), rawLog: rawLog.toString(), archived: archived.sort()]
    }
}

Map manifest = new JsonSlurper().parse(new File(args[0])) as Map
File varsDir = new File(manifest.vars as String)
Map results = [:]
for (Map scenario : manifest.scenarios) {
    File buildDir = new File(scenario.buildDir as String)
    buildDir.mkdirs()
    Harness h = new Harness(scenario, varsDir)
    results[scenario.name] = h.run(new File(scenario.jenkinsfile as String))
}
new File(args[1]).text = JsonOutput.prettyPrint(JsonOutput.toJson(results))
