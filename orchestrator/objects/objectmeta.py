"""Rules of `metadata`, common to every kind: name or generateName (in the format the kind's
strategy names), namespace, labels, annotations, owner references, finalizers; and on update
the identity fields that may not change (name, namespace, uid).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .fielderrors import FieldError, forbidden, invalid, required, too_long
from .jsonfields import dict_of, dicts_of, list_of
from .names import dns1123_label_error
from .selectors import label_key_error, label_value_error

MAX_ANNOTATIONS_SIZE = 256 * 1024


def validate_labels(labels: dict[str, Any], path: str) -> list[FieldError]:
    errs = []
    for key, value in labels.items():
        err = label_key_error(key)
        if err:
            errs.append(invalid(path, key, err))
        err = label_value_error(value)
        if err:
            errs.append(invalid(f"{path}[{key}]", value, err))
    return errs


def validate_annotations(annotations: dict[str, Any], path: str) -> list[FieldError]:
    errs = []
    total = 0
    for key, value in annotations.items():
        err = label_key_error(key.lower())
        if err:
            errs.append(invalid(path, key, err))
        total += len(key) + len(value if isinstance(value, str) else "")
    if total > MAX_ANNOTATIONS_SIZE:
        errs.append(too_long(path, MAX_ANNOTATIONS_SIZE))
    return errs


def validate_object_meta(
    obj: dict[str, Any], *, name_error: Callable[[str], str | None], namespaced: bool
) -> list[FieldError]:
    """The metadata rules of `obj`, its name checked with `name_error`."""
    errs: list[FieldError] = []
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return [required("metadata")]
    name = meta.get("name")
    generate_name = meta.get("generateName")
    if name:
        err = name_error(name)
        if err:
            errs.append(invalid("metadata.name", name, err))
    elif generate_name:
        # validate the prefix as a name, with a trailing '-' masked (it is followed by a suffix)
        err = name_error(generate_name[:-1] + "a" if generate_name.endswith("-") else generate_name)
        if err:
            errs.append(invalid("metadata.generateName", generate_name, err))
    else:
        errs.append(required("metadata.name", "name or generateName is required"))
    namespace = meta.get("namespace")
    if namespace:
        if not namespaced:
            errs.append(forbidden("metadata.namespace", "not allowed on this type"))
        else:
            err = dns1123_label_error(namespace)
            if err:
                errs.append(invalid("metadata.namespace", namespace, err))
    errs += validate_labels(dict_of(meta.get("labels")), "metadata.labels")
    errs += validate_annotations(dict_of(meta.get("annotations")), "metadata.annotations")
    controllers = 0
    for i, ref in enumerate(dicts_of(meta.get("ownerReferences"))):
        path = f"metadata.ownerReferences[{i}]"
        for fld in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(fld):
                errs.append(required(f"{path}.{fld}"))
        if ref.get("controller"):
            controllers += 1
    if controllers > 1:
        errs.append(
            invalid(
                "metadata.ownerReferences", controllers, "Only one reference can have Controller set to true"
            )
        )
    for i, fin in enumerate(list_of(meta.get("finalizers"))):
        err = label_key_error(fin)
        if err:
            errs.append(invalid(f"metadata.finalizers[{i}]", fin, err))
    return errs


def validate_object_meta_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = []
    nm, om = dict_of(new.get("metadata")), dict_of(old.get("metadata"))
    for fld in ("name", "namespace", "uid"):
        if om.get(fld) and nm.get(fld) and nm.get(fld) != om.get(fld):
            errs.append(invalid(f"metadata.{fld}", nm.get(fld), "field is immutable"))
    return errs
