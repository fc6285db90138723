"""Garment templates from a body (Anny, decimated topology) and bone-name regions."""

import numpy as np
import pytest
from scipy.spatial import cKDTree

from backend.body import BodyError
from backend.body.anny_body import AnnyPoser
from backend.body.regions import BoneRegion, body_frame, bone_region
from backend.mesh import topology
from backend.mesh.templates import (
    GARMENT_SHAPES,
    TemplateError,
    TemplateSettings,
    build_template,
    load_template_mesh,
    template_from_mesh,
)
from tests.backend_tier.body_helpers import chain_body

TOPOLOGY = "notoes_collapse10pc"


@pytest.fixture(scope="module")
def body():
    return AnnyPoser(topology=TOPOLOGY).body


@pytest.fixture(scope="module")
def templates(body):
    return {name: build_template(body, name) for name in GARMENT_SHAPES}


@pytest.mark.parametrize("name, region, side", [
    ("upperarm01.L", "upper_arm", "left"), ("lowerarm02.R", "lower_arm", "right"),
    ("wrist.L", "hand", "left"), ("finger2-3.R", "hand", "right"),
    ("upperleg01.L", "upper_leg", "left"), ("foot.R", "foot", "right"),
    ("spine03", "torso", None), ("pelvis.L", "torso", None), ("neck01", "head", None),
    ("left_shoulder", "upper_arm", "left"), ("right_elbow", "lower_arm", "right"),
    ("left_hip", "upper_leg", "left"), ("right_knee", "lower_leg", "right"),
    ("left_ankle", "foot", "left"), ("left_collar", "torso", None), ("pelvis", "torso", None),
    ("mixamorig:LeftArm", "upper_arm", "left"), ("mixamorig:LeftForeArm", "lower_arm", "left"),
    ("mixamorig:RightUpLeg", "upper_leg", "right"), ("mixamorig:RightLeg", "lower_leg", "right"),
    ("mixamorig:Hips", "torso", None),
    ("DEF-thigh.L", "upper_leg", "left"), ("DEF-forearm.R", "lower_arm", "right"),
    ("DEF-upper_arm.L", "upper_arm", "left"), ("DEF-spine.003", "torso", None),
])
def test_bone_names_of_common_rigs_map_to_body_regions(name, region, side):
    assert bone_region(name) == BoneRegion(region, side)


def test_body_frame_is_measured_from_the_skeleton(body):
    frame = body_frame(body)
    np.testing.assert_allclose(frame.up, [0, 0, 1], atol=0.02)        # Anny: Z up
    np.testing.assert_allclose(frame.front, [0, -1, 0], atol=0.02)    # facing -Y
    np.testing.assert_allclose(frame.lateral, [1, 0, 0], atol=0.02)   # body's left = +X
    assert frame.limb_parameter(frame.wrists["left"][None], "arm", "left")[0] == pytest.approx(1)


def test_a_rig_with_unknown_bone_names_is_refused_with_the_regions_it_misses():
    body = chain_body()
    with pytest.raises(BodyError, match="no bone recognised as the left upper arm"):
        body_frame(body)


def test_every_garment_type_gives_one_connected_outward_mesh_with_weights(body, templates):
    tree = cKDTree(body.rest_vertices)
    for name, template in templates.items():
        assert template.garment_type == name
        faces, vertices = template.faces, template.vertices
        assert topology.face_components(faces, len(vertices)).max() == 0, name
        assert topology.boundary_edge_count(faces) > 0, name          # openings: neck, hems
        np.testing.assert_allclose(template.weight_values.sum(1), 1, atol=1e-5)
        # Normals point away from the body: from the nearest body vertex to the face.
        centres = vertices[faces].mean(1)
        _, nearest = tree.query(centres)
        away = centres - body.rest_vertices[nearest]
        outward = (topology.face_normals(vertices, faces) * away).sum(1) > 0
        assert outward.mean() > 0.9, (name, outward.mean())
        assert topology.edge_lengths(vertices, faces).mean() < 0.03 * 1.3, name


def test_tight_garments_sit_just_off_the_skin_and_loose_ones_clear_it(body, templates):
    tree = cKDTree(body.rest_vertices)
    settings = TemplateSettings()
    for name, template in templates.items():
        distance, _ = tree.query(template.vertices)
        if GARMENT_SHAPES[name].kind == "surface":
            assert np.median(distance) < 0.03, name
        else:
            assert distance.min() > settings.loose_ease_m * 0.5, name


def test_garments_cover_the_parts_their_type_names(body, templates):
    frame = body_frame(body)
    height = {name: frame.height(t.vertices) for name, t in templates.items()}
    torso = float(frame.height(frame.neck[None])[0])
    leg = -float(frame.height(frame.ankles["left"][None])[0])

    def sideways(name):   # how far towards the left wrist the garment reaches, 1 = wrist
        wrist = (frame.wrists["left"] - frame.hip_centre) @ frame.lateral
        return ((templates[name].vertices - frame.hip_centre) @ frame.lateral).max() / wrist

    assert sideways("long_sleeve") > 0.85 > 0.6 > sideways("tshirt") > 0.3
    assert height["trousers"].min() < -0.85 * leg < -0.5 * leg < height["shorts"].min()
    assert height["tshirt"].max() > 0.8 * torso and height["trousers"].max() < 0.35 * torso
    assert height["dress"].max() > 0.5 * torso > 0.35 * torso > height["skirt"].max()
    assert height["dress"].min() < -0.7 * leg < height["skirt"].min()


def test_unknown_garment_type_and_bad_settings_are_refused(body):
    with pytest.raises(TemplateError, match="unknown garment type 'cape'"):
        build_template(body, "cape")
    with pytest.raises(TemplateError, match="target_edge_m must be > 0"):
        TemplateSettings(target_edge_m=0)


def test_a_finer_target_edge_gives_a_denser_template(body):
    coarse = build_template(body, "skirt", TemplateSettings(target_edge_m=0.05))
    fine = build_template(body, "skirt", TemplateSettings(target_edge_m=0.02))
    assert fine.vertex_count > 3 * coarse.vertex_count


def test_a_user_mesh_becomes_a_template_and_bad_meshes_are_named(body, tmp_path):
    v = np.array([[0, -0.2, 0.0], [0.1, -0.2, 0.0], [0, -0.2, 0.1], [0.1, -0.2, 0.1]])
    f = np.array([[0, 1, 2], [1, 3, 2]])
    path = tmp_path / "skirt.obj"
    path.write_text("".join(f"v {x} {y} {z}\n" for x, y, z in v)
                    + "".join(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in f))
    template = load_template_mesh(path, body)
    assert template.vertex_count == 4 and template.face_count == 2
    assert template.garment_type == "template" and template.source == str(path)
    with pytest.raises(TemplateError, match="zero area"):
        template_from_mesh(np.zeros((3, 3)), np.array([[0, 1, 2]]), body)
    with pytest.raises(TemplateError, match=r"face indices must be in \[0, 4\)"):
        template_from_mesh(v, np.array([[0, 1, 7]]), body)
    with pytest.raises(TemplateError, match="not found"):
        load_template_mesh(tmp_path / "missing.ply", body)
    with pytest.raises(TemplateError, match="must be .obj or .ply"):
        load_template_mesh(tmp_path / "skirt.fbx", body)


def _leg_share(body, template, side):
    """(V,) share of each template vertex's weight on the bones of one leg."""
    from backend.body.regions import bone_regions

    leg = np.array([r is not None and r.side == side and r.region in
                    ("upper_leg", "lower_leg", "foot") for r in bone_regions(body.bone_names)])
    return (template.weight_values * leg[template.weight_indices]).sum(axis=1)


def test_a_skirts_hem_follows_both_legs_not_the_nearest_one(body, templates):
    """Copied from the nearest body part, the hem's front-left vertices would move with
    the left leg only (the skirt would fold into the gap between the legs on every
    step); smoothed over the skirt, every hem vertex takes both legs into account."""
    skirt = templates["skirt"]
    raw = build_template(body, "skirt", TemplateSettings(loose_smoothing_m=0.0))
    assert np.allclose(skirt.vertices, raw.vertices)          # only the weights differ
    np.testing.assert_allclose(skirt.weight_values.sum(axis=1), 1.0, atol=1e-5)
    frame = body_frame(body)
    height = frame.height(skirt.vertices)
    hem = height < height.min() + 0.02
    left, right = _leg_share(body, skirt, "left")[hem], _leg_share(body, skirt, "right")[hem]
    raw_left, raw_right = _leg_share(body, raw, "left")[hem], _leg_share(body, raw, "right")[hem]
    # unsmoothed: the hem splits into a left half and a right half
    assert np.abs(raw_left - raw_right).max() > 0.5
    # smoothed: the halves blend (the sides still lean to their own leg, as cloth does)
    assert np.abs(left - right).max() < 0.7 * np.abs(raw_left - raw_right).max()
    assert np.abs(left - right).mean() < 0.5 * np.abs(raw_left - raw_right).mean()
    assert (left + right).min() > 0.2                          # the legs still drive it


def test_weight_smoothing_keeps_a_constant_field_and_is_resolution_independent(body):
    from backend.mesh.templates import smooth_weights

    coarse = build_template(body, "skirt", TemplateSettings(target_edge_m=0.05))
    # one bone everywhere stays one bone everywhere
    ones = np.zeros_like(coarse.weight_indices)
    idx, val = smooth_weights(coarse.vertices, coarse.faces, ones,
                              np.ones_like(coarse.weight_values) / ones.shape[1],
                              body.bone_count, 0.15, 8)
    assert (val[:, 0] > 1 - 1e-6).all() and (idx[:, 0] == 0).all()
    # the same length smooths a denser template about as much
    fine = build_template(body, "skirt", TemplateSettings(target_edge_m=0.025))
    spread = []
    for template in (coarse, fine):
        hem = body_frame(body).height(template.vertices)
        hem = hem < hem.min() + 0.02
        share = _leg_share(body, template, "left")[hem] - _leg_share(body, template, "right")[hem]
        spread.append(np.abs(share).max())
    assert abs(spread[0] - spread[1]) < 0.15, spread
