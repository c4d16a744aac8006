package io.taskguard.jenkins

/**
 * ConsoleCall holds the shell lines with which taskguardPublish and
 * taskguardProtectTask send a file to the console with curl, so that both
 * trust, authenticate, give up and fail alike. The script before them sets
 * resp (the file for the answer's body) and the positional parameters to
 * curl's request options; after them $code is the HTTP status. The
 * credentials reach curl on its standard input (a config file), never on a
 * command line or in the trace; TG_CONSOLE_INSECURE, TG_CA_CERT,
 * TG_MAX_TIME (curl's --max-time, empty for none), TG_TIMEOUT (the step's
 * timeout as given), TG_USER, TG_PASS, TG_URL, TG_CONSOLE_URL and TG_ERR
 * come in through the environment. When curl fails, the reason goes to
 * $TG_ERR, named by the step, and the script exits 2.
 */
class ConsoleCall {

    private static final String CURL = '''if [ "$TG_CONSOLE_INSECURE" = true ]; then set -- "$@" -k; fi
if [ -n "$TG_CA_CERT" ]; then set -- "$@" --cacert "$TG_CA_CERT"; fi
if [ -n "$TG_MAX_TIME" ]; then set -- "$@" --max-time "$TG_MAX_TIME"; fi
curlrc() { printf '%s:%s\\n' "$TG_USER" "$TG_PASS" | sed 's/[\\\\"]/\\\\&/g; s/^/user = "/; s/$/"/'; }
code=$(curlrc | curl -K - "$@" "$TG_URL") || {
  curlexit=$?
  if [ "$curlexit" = 28 ]; then
    why="gave up after $TG_TIMEOUT (timeout): the console at $TG_CONSOLE_URL did not answer in time"
    echo "$TG_STEP: $why (curl exit 28)" >"$TG_ERR"
  else
    echo "$TG_STEP: could not reach the console at $TG_CONSOLE_URL (curl exit $curlexit)" >"$TG_ERR"
  fi
  rm -f "$resp"; exit 2
}
'''

    /** Returns the lines for step, whose name starts its error messages. */
    @NonCPS
    static String curl(String step) {
        return CURL.replace('$TG_STEP', step)
    }

}
