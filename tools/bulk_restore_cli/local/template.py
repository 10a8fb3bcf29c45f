"""CloudFormation templates: a YAML loader for the short-form tags and a resolver of intrinsics.

``load_template`` turns ``!Ref``, ``!GetAtt``, ``!Sub`` ... into their long forms (``{"Ref": ...}``,
``{"Fn::GetAtt": [...]}``), so the rest of the code sees one shape. ``Resolver`` evaluates the
long forms against parameters, pseudo parameters, conditions and the resources made so far.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

INTRINSICS = (
    "Ref",
    "Condition",
    "Fn::GetAtt",
    "Fn::Sub",
    "Fn::Join",
    "Fn::Select",
    "Fn::Split",
    "Fn::If",
    "Fn::Equals",
    "Fn::Not",
    "Fn::And",
    "Fn::Or",
    "Fn::FindInMap",
    "Fn::Base64",
    "Fn::GetAZs",
    "Fn::ImportValue",
    "Fn::ToJsonString",
    "Fn::Length",
    "Fn::Cidr",
)
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class TemplateError(ValueError):
    """The template (or a parameter given for it) is not usable."""


class Unresolvable(Exception):
    """An intrinsic that names something the local stack did not make (or cannot evaluate)."""


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader without timestamps ("2010-09-09" stays a string) and with YAML 1.2 booleans
    (only true/false: a logical id such as ``Off`` or ``Yes`` stays a string)."""


_CfnLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_CfnLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: str | Path) -> dict[str, Any]:
    """Load a template file (YAML or JSON)."""
    return parse_template(Path(path).read_text(encoding="utf-8"))


def parse_template(text: str) -> dict[str, Any]:
    """Parse a template's text (YAML or JSON)."""
    doc = yaml.load(text, Loader=_CfnLoader)
    if not isinstance(doc, dict) or not isinstance(doc.get("Resources"), dict):
        raise TemplateError("not a CloudFormation template: no Resources section")
    return doc


def sub_variables(template_string: str) -> list[str]:
    """The names a Fn::Sub string refers to ("${Name}", "${Name.Attr}"), without "${!Literal}"."""
    return [name.strip() for name in _SUB_VARIABLE.findall(template_string) if not name.startswith("!")]


def references(value: Any) -> set[str]:
    """Every logical name a piece of template refers to through Ref, Fn::GetAtt or Fn::Sub."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if len(node) == 1:
                ((name, arg),) = node.items()
                if name == "Ref" and isinstance(arg, str):
                    found.add(arg)
                elif name == "Fn::GetAtt":
                    target = arg[0] if isinstance(arg, list) and arg else str(arg).partition(".")[0]
                    if isinstance(target, str):
                        found.add(target)
                elif name == "Fn::Sub":
                    text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1] if len(arg) > 1 else {})
                    found.update(v.partition(".")[0] for v in sub_variables(text) if v not in (variables or {}))
                    walk(variables)
                    return
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(value)
    return found


def parse_parameters(template: dict[str, Any], overrides: dict[str, str] | None = None) -> dict[str, Any]:
    """Parameter values: the overrides, else the defaults, checked against the declared constraints."""
    declared = template.get("Parameters") or {}
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise TemplateError(f"unknown parameter(s): {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        if name in overrides:
            raw: Any = overrides[name]
        elif "Default" in spec:
            raw = spec["Default"]
        else:
            raise TemplateError(f"parameter {name} has no default: give it a value")
        kind = str(spec.get("Type", "String"))
        if kind in ("CommaDelimitedList", "List<Number>") or kind.startswith("List<"):
            value: Any = [part.strip() for part in (raw if isinstance(raw, list) else str(raw).split(","))]
        else:
            value = "true" if raw is True else "false" if raw is False else str(raw)
            allowed = [str(a).lower() if isinstance(a, bool) else str(a) for a in spec.get("AllowedValues", [])]
            if allowed and value not in allowed:
                raise TemplateError(f"parameter {name}={value!r} is not one of {allowed}")
            if kind == "Number":
                try:
                    number = float(value)
                except ValueError as exc:
                    raise TemplateError(f"parameter {name}={value!r} is not a number") from exc
                if "MinValue" in spec and number < float(spec["MinValue"]):
                    raise TemplateError(f"parameter {name}={value} is below its MinValue {spec['MinValue']}")
                if "MaxValue" in spec and number > float(spec["MaxValue"]):
                    raise TemplateError(f"parameter {name}={value} is above its MaxValue {spec['MaxValue']}")
            pattern = spec.get("AllowedPattern")
            if pattern and not re.fullmatch(str(pattern), value):
                raise TemplateError(f"parameter {name}={value!r} does not match {pattern}")
        values[name] = value
    return values


class Resolver:
    """Evaluates intrinsic functions.

    ``refs`` maps logical names (parameters, pseudo parameters, made resources) to what Ref gives;
    ``attributes`` maps a resource's logical name to its Fn::GetAtt values; ``conditions`` are the
    template's Conditions section, evaluated on first use.
    """

    def __init__(
        self,
        refs: dict[str, Any],
        attributes: dict[str, dict[str, Any]] | None = None,
        conditions: dict[str, Any] | None = None,
        mappings: dict[str, Any] | None = None,
        region: str = "us-east-1",
    ):
        self.refs = refs
        self.attributes = attributes if attributes is not None else {}
        self.condition_defs = conditions or {}
        self.mappings = mappings or {}
        self.region = region
        self._conditions: dict[str, bool] = {}
        self._evaluating: set[str] = set()
        self._functions: dict[str, Callable[[Any], Any]] = {
            "Ref": self._ref,
            "Condition": lambda name: self.condition(str(name)),
            "Fn::GetAtt": self._get_att,
            "Fn::Sub": self._sub,
            "Fn::Join": self._join,
            "Fn::Select": self._select,
            "Fn::Split": self._split,
            "Fn::If": self._if,
            "Fn::Equals": self._equals,
            "Fn::Not": lambda arg: not self._bool(self._one(arg)),
            "Fn::And": lambda arg: all(self._bool(a) for a in arg),
            "Fn::Or": lambda arg: any(self._bool(a) for a in arg),
            "Fn::FindInMap": self._find_in_map,
            "Fn::Base64": lambda arg: base64.b64encode(str(self.resolve(arg)).encode()).decode(),
            "Fn::GetAZs": lambda arg: [f"{self.resolve(arg) or self.region}{z}" for z in "abc"],
            "Fn::ToJsonString": lambda arg: json.dumps(self.resolve(arg), separators=(",", ":")),
            "Fn::Length": lambda arg: len(self.resolve(arg)),
            "Fn::ImportValue": self._import_value,
            "Fn::Cidr": self._unsupported("Fn::Cidr"),
        }

    # ---- public ----------------------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        """The value with every intrinsic evaluated; AWS::NoValue entries removed."""
        if isinstance(value, dict):
            if len(value) == 1:
                ((name, arg),) = value.items()
                function = self._functions.get(name)
                if function is not None and (name != "Condition" or isinstance(arg, str)):
                    return function(arg)
            resolved = {k: self.resolve(v) for k, v in value.items()}
            return {k: v for k, v in resolved.items() if v is not NO_VALUE}
        if isinstance(value, list):
            return [v for v in (self.resolve(item) for item in value) if v is not NO_VALUE]
        return value

    def condition(self, name: str) -> bool:
        if name in self._conditions:
            return self._conditions[name]
        if name not in self.condition_defs:
            raise TemplateError(f"unknown condition {name}")
        if name in self._evaluating:
            raise TemplateError(f"condition {name} refers to itself")
        self._evaluating.add(name)
        try:
            self._conditions[name] = self._bool(self.condition_defs[name])
        finally:
            self._evaluating.discard(name)
        return self._conditions[name]

    # ---- functions -------------------------------------------------------------------------

    def _one(self, arg: Any) -> Any:
        return arg[0] if isinstance(arg, list) and len(arg) == 1 else arg

    def _bool(self, value: Any) -> bool:
        result = self.resolve(value)
        if isinstance(result, bool):
            return result
        if isinstance(result, str) and result.lower() in ("true", "false"):
            return result.lower() == "true"
        raise TemplateError(f"not a condition: {value!r}")

    def _ref(self, name: Any) -> Any:
        name = self.resolve(name)
        if name == "AWS::NoValue":
            return NO_VALUE
        if name not in self.refs:
            raise Unresolvable(f"Ref {name}")
        return self.refs[name]

    def _get_att(self, arg: Any) -> Any:
        if isinstance(arg, str):
            resource, _, attribute = arg.partition(".")
        else:
            resource, attribute = arg[0], self.resolve(arg[1])
        values = self.attributes.get(resource)
        if values is None or attribute not in values:
            raise Unresolvable(f"Fn::GetAtt {resource}.{attribute}")
        return values[attribute]

    def _sub(self, arg: Any) -> str:
        if isinstance(arg, str):
            text, variables = arg, {}
        else:
            text, variables = arg[0], {k: self.resolve(v) for k, v in (arg[1] if len(arg) > 1 else {}).items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name:
                resource, _, attribute = name.partition(".")
                return str(self._get_att([resource, attribute]))
            return str(self._ref(name))

        return _SUB_VARIABLE.sub(replace, text)

    def _join(self, arg: Any) -> str:
        delimiter, items = arg
        resolved = self.resolve(items)
        return str(delimiter).join(str(i) for i in resolved)

    def _select(self, arg: Any) -> Any:
        index, items = self.resolve(arg[0]), self.resolve(arg[1])
        try:
            return items[int(index)]
        except (IndexError, ValueError, TypeError) as exc:
            raise TemplateError(f"Fn::Select index {index} out of range") from exc

    def _split(self, arg: Any) -> list[str]:
        delimiter, text = arg
        return str(self.resolve(text)).split(str(delimiter))

    def _if(self, arg: Any) -> Any:
        name, if_true, if_false = arg
        return self.resolve(if_true if self.condition(str(name)) else if_false)

    def _equals(self, arg: Any) -> bool:
        left, right = (self.resolve(a) for a in arg)
        return _scalar(left) == _scalar(right)

    def _find_in_map(self, arg: Any) -> Any:
        name, top, second = (self.resolve(a) for a in arg[:3])
        try:
            return self.mappings[name][top][second]
        except KeyError as exc:
            if len(arg) > 3 and isinstance(arg[3], dict) and "DefaultValue" in arg[3]:
                return self.resolve(arg[3]["DefaultValue"])
            raise TemplateError(f"Fn::FindInMap {name}/{top}/{second} not found") from exc

    def _import_value(self, arg: Any) -> Any:
        raise Unresolvable(f"Fn::ImportValue {self.resolve(arg)}: other stacks' exports do not exist locally")

    @staticmethod
    def _unsupported(name: str) -> Callable[[Any], Any]:
        def fail(arg: Any) -> Any:
            raise Unresolvable(f"{name} is not supported locally")

        return fail


def _scalar(value: Any) -> Any:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return str(value)
    return value


def dependency_order(resources: dict[str, Any], known_names: Iterable[str] = ()) -> list[str]:
    """Logical ids ordered so that each comes after the resources it refers to (stable otherwise)."""
    names = list(resources)
    external = set(known_names)
    needs: dict[str, set[str]] = {}
    for name, resource in resources.items():
        depends = resource.get("DependsOn") or []
        depends = [depends] if isinstance(depends, str) else list(depends)
        refs = references(resource.get("Properties") or {}) | set(depends)
        needs[name] = {r for r in refs if r in resources and r != name and r not in external}
    ordered: list[str] = []
    done: set[str] = set()
    while len(ordered) < len(names):
        ready = [n for n in names if n not in done and needs[n] <= done]
        if not ready:
            cycle = sorted(n for n in names if n not in done)
            raise TemplateError(f"circular references between resources: {', '.join(cycle)}")
        for name in ready:
            ordered.append(name)
            done.add(name)
    return ordered


def template_event(function: str, kind: str) -> dict[str, Any]:
    """The properties of ``function``'s one event of type ``kind`` ("SQS", "DynamoDB") in template.yaml,
    for what runs the functions without provisioning the whole stack (a benchmark, a test): its event sources
    take the template's batch sizes and windows, not copies of them. Parameters resolve to their
    defaults; a property naming a resource (the queue, the stream) is left out: none was made."""
    from bulk_restore_cli.local.stack import find_template

    template = load_template(find_template())
    events = template["Resources"][function]["Properties"].get("Events") or {}
    found = [event.get("Properties") or {} for event in events.values() if event.get("Type") == kind]
    if len(found) != 1:
        raise LookupError(f"{function} has {len(found)} events of type {kind} in template.yaml, not one")
    resolver = Resolver(parse_parameters(template), conditions=template.get("Conditions"), mappings=template.get("Mappings"))
    properties: dict[str, Any] = {}
    for name, value in found[0].items():
        try:
            properties[name] = resolver.resolve(value)
        except Unresolvable:
            continue
    return properties
