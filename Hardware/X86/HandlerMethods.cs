using System.Collections.Frozen;
using System.Reflection;

namespace ActorVm.Hardware.X86;

/// <summary>
/// Maps a handler pointer (what the decode cache stores in <see cref="DecodedInstruction.Handler"/>,
/// taken with <c>&amp;Method</c>) back to the method it points to, so that
/// <see cref="BlockCompiler"/> can emit a direct call to it. Built once, by reflection over the
/// instruction classes: every static <c>(Cpu, ref DecodedInstruction)</c> or
/// <c>(Cpu, ref Instruction)</c> method, the generic fast forms instantiated over every struct
/// that satisfies their constraints (<see cref="Instructions.IAddressing"/>, the fused pairs'
/// flag setters and conditions), compared by <see cref="RuntimeMethodHandle.GetFunctionPointer"/>.
/// A pointer that is not in the map is not guessed at: its block is simply not compiled.
/// </summary>
internal static class HandlerMethods
{
    private const BindingFlags Statics = BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly;

    private static readonly Lazy<FrozenDictionary<nint, MethodInfo>> Map = new(Build);

    /// <summary>The method a handler pointer calls, or null when it is not a known handler.</summary>
    public static MethodInfo? Find(nint handler) => Map.Value.GetValueOrDefault(handler);

    /// <summary>How many handler pointers the map knows (for tests and statistics).</summary>
    public static int Count => Map.Value.Count;

    private static FrozenDictionary<nint, MethodInfo> Build()
    {
        var types = typeof(Cpu).Assembly.GetTypes()
            .Where(t => t.Namespace == typeof(Instructions.FastForms).Namespace || t == typeof(InstructionTable))
            .ToArray();
        var structs = StructArguments(types);
        var map = new Dictionary<nint, MethodInfo>();
        foreach (var type in types.Where(t => !t.IsGenericTypeDefinition))
        {
            foreach (var method in type.GetMethods(Statics).Where(IsHandlerShape))
            {
                foreach (var m in Instantiations(method, structs))
                {
                    map.TryAdd(m.MethodHandle.GetFunctionPointer(), m);
                }
            }
        }

        return map.ToFrozenDictionary();
    }

    /// <summary><c>static void M(Cpu, ref DecodedInstruction)</c> or <c>static void M(Cpu, ref Instruction)</c>.</summary>
    private static bool IsHandlerShape(MethodInfo m)
    {
        var p = m.GetParameters();
        return m.ReturnType == typeof(void) && p.Length == 2 && p[0].ParameterType == typeof(Cpu)
            && p[1].ParameterType.IsByRef
            && p[1].ParameterType.GetElementType() is { } e
            && (e == typeof(DecodedInstruction) || e == typeof(Iced.Intel.Instruction));
    }

    /// <summary>
    /// The value types a generic handler can be instantiated over: the non-generic structs of the
    /// instruction classes, and the generic ones (a flag setter over its addressing) closed over
    /// those.
    /// </summary>
    private static List<Type> StructArguments(Type[] types)
    {
        var plain = types.Where(t => t.IsValueType && !t.IsGenericTypeDefinition && !t.IsEnum && t.GetInterfaces().Length > 0).ToList();
        var closed = new List<Type>(plain);
        foreach (var generic in types.Where(t => t.IsValueType && t.IsGenericTypeDefinition))
        {
            foreach (var args in Combinations(generic.GetGenericArguments(), plain))
            {
                if (TryClose(() => generic.MakeGenericType(args)) is { } t)
                {
                    closed.Add(t);
                }
            }
        }

        return closed;
    }

    private static IEnumerable<MethodInfo> Instantiations(MethodInfo method, List<Type> structs)
    {
        if (!method.IsGenericMethodDefinition)
        {
            yield return method;
            yield break;
        }

        foreach (var args in Combinations(method.GetGenericArguments(), structs))
        {
            if (TryClose(() => method.MakeGenericMethod(args)) is { } m)
            {
                yield return m;
            }
        }
    }

    /// <summary>Every assignment of candidate types to the parameters that meets each parameter's interface constraints.</summary>
    private static IEnumerable<Type[]> Combinations(Type[] parameters, List<Type> candidates)
    {
        IEnumerable<Type[]> acc = [[]];
        foreach (var p in parameters)
        {
            var constraints = p.GetGenericParameterConstraints().Where(c => c.IsInterface && !c.ContainsGenericParameters).ToArray();
            var fits = candidates.Where(c => constraints.All(i => i.IsAssignableFrom(c))).ToArray();
            acc = acc.SelectMany(prefix => fits.Select(f => (Type[])[.. prefix, f])).ToArray();
        }

        return acc;
    }

    private static T? TryClose<T>(Func<T> make) where T : class
    {
        try
        {
            return make();
        }
        catch (ArgumentException)
        {
            // A constraint the filter above does not see (e.g. a generic interface): not an instantiation.
            return null;
        }
    }
}
