/**
 * Presentation context and role negotiation (PS3.8 §9.3.2.2, §9.3.3.2; PS3.7 Annex D.3.3.4), pure: an
 * A-ASSOCIATE-RQ and the acceptor's policy in, the A-ASSOCIATE-AC's contexts and role replies out. The
 * requestor side (checking an AC against what was proposed) is here too.
 */
import type {
  AAssociateAc,
  AAssociateRq,
  PresentationContextAc,
  PresentationContextRq,
  RoleSelection,
} from './pdu/types.js';

/** PS3.8 Table 9-18 result/reason of a presentation context. */
export const ContextResult = {
  Acceptance: 0,
  UserRejection: 1,
  NoReason: 2,
  AbstractSyntaxNotSupported: 3,
  TransferSyntaxesNotSupported: 4,
} as const;

export interface AcceptorPolicy {
  /** The transfer syntaxes the acceptor takes for this abstract syntax, in its order of preference; [] = refused. */
  transferSyntaxesFor(abstractSyntax: string): readonly string[];
  /**
   * True: pick the first syntax *the requestor* proposed that we accept (storage: receive the bytes as the
   * modality prefers, never re-encode). False: pick by the acceptor's preference.
   */
  preferRequestorOrder(abstractSyntax: string): boolean;
  /** Roles the acceptor agrees to for a SOP class when the requestor proposes role selection. */
  acceptRole(selection: RoleSelection): { scuRole: boolean; scpRole: boolean };
}

/** An accepted presentation context, with the roles in force (PS3.7 D.3.3.4). */
export interface AcceptedContext {
  id: number;
  abstractSyntax: string;
  transferSyntax: string;
  /** The requestor may act as SCU of this SOP class. */
  requestorIsScu: boolean;
  /** The requestor may act as SCP of this SOP class (e.g. the storage sub-operations of a C-GET). */
  requestorIsScp: boolean;
}

export interface AcceptorNegotiation {
  contexts: PresentationContextAc[];
  accepted: Map<number, AcceptedContext>;
  roleReplies: RoleSelection[];
}

export function negotiateAsAcceptor(rq: AAssociateRq, policy: AcceptorPolicy): AcceptorNegotiation {
  const proposedRoles = new Map(rq.userInformation.roleSelections.map((r) => [r.sopClassUid, r]));
  const roleReplies: RoleSelection[] = [];
  const agreedRoles = new Map<string, { scuRole: boolean; scpRole: boolean }>();
  for (const proposal of proposedRoles.values()) {
    const agreed = policy.acceptRole(proposal);
    // An acceptor may only agree to what was proposed (PS3.7 Table D.3-11).
    const reply = { scuRole: proposal.scuRole && agreed.scuRole, scpRole: proposal.scpRole && agreed.scpRole };
    agreedRoles.set(proposal.sopClassUid, reply);
  }
  const contexts: PresentationContextAc[] = [];
  const accepted = new Map<number, AcceptedContext>();
  for (const pc of rq.presentationContexts) {
    const result = negotiateContext(pc, policy);
    contexts.push(result);
    if (result.result === ContextResult.Acceptance) {
      const roles = agreedRoles.get(pc.abstractSyntax);
      accepted.set(pc.id, {
        id: pc.id,
        abstractSyntax: pc.abstractSyntax,
        transferSyntax: result.transferSyntax!,
        // Without role selection, the requestor is SCU and the acceptor SCP (the default roles).
        requestorIsScu: roles ? roles.scuRole : true,
        requestorIsScp: roles ? roles.scpRole : false,
      });
    }
  }
  // Role replies only for the SOP classes of accepted contexts: a reply for anything else would be meaningless,
  // and echoing an arbitrary proposed string could make the A-ASSOCIATE-AC unencodable.
  const acceptedClasses = new Set([...accepted.values()].map((c) => c.abstractSyntax));
  for (const [sopClassUid, reply] of agreedRoles) if (acceptedClasses.has(sopClassUid)) roleReplies.push({ sopClassUid, ...reply });
  return { contexts, accepted, roleReplies };
}

function negotiateContext(pc: PresentationContextRq, policy: AcceptorPolicy): PresentationContextAc {
  const ours = policy.transferSyntaxesFor(pc.abstractSyntax);
  if (ours.length === 0) return { id: pc.id, result: ContextResult.AbstractSyntaxNotSupported };
  let chosen: string | undefined;
  if (policy.preferRequestorOrder(pc.abstractSyntax)) {
    chosen = pc.transferSyntaxes.find((ts) => ours.includes(ts));
  } else {
    chosen = ours.find((ts) => pc.transferSyntaxes.includes(ts));
  }
  if (chosen === undefined) return { id: pc.id, result: ContextResult.TransferSyntaxesNotSupported };
  return { id: pc.id, result: ContextResult.Acceptance, transferSyntax: chosen };
}

/** The requestor's view of an AC: the contexts it may use, each with the proposed abstract syntax. */
export function acceptedByPeer(rq: AAssociateRq, ac: AAssociateAc): Map<number, AcceptedContext> {
  const proposed = new Map(rq.presentationContexts.map((pc) => [pc.id, pc]));
  const roleReplies = new Map(ac.userInformation.roleSelections.map((r) => [r.sopClassUid, r]));
  const out = new Map<number, AcceptedContext>();
  for (const pc of ac.presentationContexts) {
    const mine = proposed.get(pc.id);
    // A context the peer accepted with a syntax we did not propose is ignored (PS3.8 §9.3.3.2).
    if (!mine || pc.result !== ContextResult.Acceptance || !pc.transferSyntax) continue;
    if (!mine.transferSyntaxes.includes(pc.transferSyntax)) continue;
    const roles = roleReplies.get(mine.abstractSyntax);
    out.set(pc.id, {
      id: pc.id,
      abstractSyntax: mine.abstractSyntax,
      transferSyntax: pc.transferSyntax,
      requestorIsScu: roles ? roles.scuRole : true,
      requestorIsScp: roles ? roles.scpRole : false,
    });
  }
  return out;
}
