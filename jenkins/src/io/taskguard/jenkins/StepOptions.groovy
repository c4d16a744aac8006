package io.taskguard.jenkins

/**
 * StepOptions checks and normalizes the options of the library's steps in
 * one place, so that each step under vars/ only declares its own: the
 * parameters it accepts, their defaults, which are booleans, lists and
 * ports. Every method is @NonCPS and calls no step: parse returns the
 * error message and the step raises it with `error`.
 *
 * The rules, the same for every step:
 *   - an unknown parameter is an error that names it;
 *   - a parameter given as null (an unset env.X or job parameter) takes its
 *     default, as an absent one does;
 *   - booleans are a Boolean or the strings 'true' and 'false' (Jenkins
 *     parameters and environment variables are strings, and Groovy takes
 *     the string 'false' as true);
 *   - lists are a list of strings or one string of comma- or
 *     newline-separated items (a job parameter), as the Action's inputs are;
 *     they come out trimmed, empty items left out;
 *   - ports are a number, a list of numbers or one string of comma- or
 *     newline-separated numbers between 1 and 65535; they come out as
 *     decimal strings;
 *   - durations are a Go duration string ('10m', '1h30m', '90s') or 0 (no
 *     limit); a bare number other than 0 is refused (its unit would be a
 *     guess). They come out as strings.
 */
class StepOptions {

    // KINDS are the kinds of parameters a spec lists (spec.booleans, ...),
    // each with what a value of it must be.
    private static final Map<String, String> KINDS = [
        booleans: "true or false (a boolean, or the string 'true' or 'false')",
        lists: 'a list of strings or one string of comma- or newline-separated items',
        ports: 'ports between 1 and 65535 (a number, a list of numbers or one string of comma-separated numbers)',
        durations: "a duration such as '10m' or '1h30m' (0: no limit)",
    ]

    /**
     * Returns [options: Map, error: String]: args over spec.defaults, with
     * spec.booleans, spec.lists and spec.ports normalized; error is null
     * when every parameter is one of spec.parameters and well formed, else
     * the message for the first that is not, prefixed with the step's name.
     */
    @NonCPS
    static Map parse(String step, Map args, Map spec) {
        for (Object key : args.keySet()) {
            if (!(key in (spec.parameters as List))) {
                return failure("${step}: unknown parameter '${key}' (see ${step}.txt for the list)")
            }
        }
        Map o = withDefaults((spec.defaults ?: [:]) as Map, args)
        for (String kind : KINDS.keySet()) {
            for (String key : (spec[kind] ?: []) as List<String>) {
                String bad = check(kind, o[key])
                if (bad != null) {
                    return failure("${step}: parameter '${key}' must be ${KINDS[kind]}, not ${bad}")
                }
                o[key] = normalize(kind, o[key])
            }
        }
        return [options: o, error: null]
    }

    // check returns null for an acceptable value of a kind, else the value
    // described for the error message.
    @NonCPS
    private static String check(String kind, Object value) {
        switch (kind) {
            case 'booleans': return badBoolean(value)
            case 'lists': return badList(value)
            case 'durations': return badDuration(value)
            default: return badPorts(value)
        }
    }

    // normalize returns a value check accepted as the step uses it: a
    // Boolean (or null), a list of strings, a list of decimal ports.
    @NonCPS
    private static Object normalize(String kind, Object value) {
        switch (kind) {
            case 'booleans': return value == null ? null : value.toString() == 'true'
            case 'lists': return listItems(value)
            case 'durations': return value == null ? null : value.toString().trim()
            default: return portItems(value)
        }
    }

    // UNIT_SECONDS are the seconds of each unit a duration may use.
    private static final Map<String, BigDecimal> UNIT_SECONDS = [
        h: 3600G, m: 60G, s: 1G, ms: 0.001G, us: 0.000001G, ns: 0.000000001G,
    ]

    /**
     * Returns a duration that parse accepted as seconds in decimal, as
     * curl's --max-time takes them ('1h30m' is '5400', '1.5s' '1.5'), or
     * null for 0 (no limit).
     */
    @NonCPS
    static String seconds(String duration) {
        BigDecimal total = 0G
        java.util.regex.Matcher m = duration =~ /(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)/
        while (m.find()) {
            total += new BigDecimal(m.group(1)) * UNIT_SECONDS[m.group(2)]
        }
        return total > 0G ? total.stripTrailingZeros().toPlainString() : null
    }

    @NonCPS
    private static Map failure(Object message) {
        return [options: null, error: message.toString()]
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

    // badPorts returns null for an acceptable port parameter (unset, a port
    // number, a string of comma- or newline-separated port numbers, or a
    // list of those), else the offending item quoted for the error message.
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

    // badDuration returns null for an acceptable duration parameter (unset,
    // 0, a Go duration string), else the value quoted for the error message.
    @NonCPS
    private static String badDuration(Object value) {
        if (value == null) {
            return null
        }
        String s = value.toString().trim()
        if (!Number.isInstance(value) && !CharSequence.isInstance(value)) {
            return "${value} (${value.getClass().simpleName})"
        }
        return s == '0' || s ==~ /(\d+(\.\d+)?(ns|us|ms|s|m|h))+/ ? null : "'" + s + "'"
    }

    // portItems returns the ports of a parameter badPorts accepted, as
    // decimal strings without leading zeros.
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

}
